"""`kubectl ballast check`: the admission rules offline, as a service team's CI pipeline runs them."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from ballast.cli.main import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ARGS = ["check", "-f", str(EXAMPLES / "05-deployments.yaml"),
        "--policy", str(EXAMPLES / "02-releasepolicy-production.yaml"),
        "--ownership", str(EXAMPLES / "03-serviceownership-checkout.yaml"),
        "--ownership", str(EXAMPLES / "04-serviceownership-recommendations.yaml")]
WEDNESDAY, SATURDAY = "2026-11-25T12:00:00Z", "2026-11-28T12:00:00Z"


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


def test_refusal_exits_non_zero_and_names_rule_and_fix():
    result = run(*ARGS, "--now", WEDNESDAY)
    assert result.exit_code == 1
    assert "OK       Deployment shop/checkout" in result.output
    assert "REFUSED  Deployment shop/recommendations" in result.output
    assert "missing annotation ballast.dev/runbook: add an http(s) URL" in result.output
    assert "rule required-annotations" in result.output


def test_freeze_window_applies_at_the_given_instant():
    result = run(*ARGS, "--now", SATURDAY)
    assert "REFUSED  Deployment shop/checkout" in result.output
    assert "frozen by window weekend" in result.output


def test_compliant_manifest_exits_zero(tmp_path):
    docs = list(yaml.safe_load_all((EXAMPLES / "05-deployments.yaml").read_text()))
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(docs[0]))
    result = run("check", "-f", str(tmp_path / "ok.yaml"), "--now", WEDNESDAY)
    assert result.exit_code == 0, result.output
    assert "0 refused" in result.output


def test_default_policy_and_standard_input():
    manifest = yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bare"},
                               "spec": {"template": {"spec": {"containers": []}}}})
    result = run("check", "-f", "-", input=manifest)
    assert result.exit_code == 1
    assert "Deployment default/bare is missing annotation ballast.dev/owner" in result.output
    assert "ReleasePolicy default" in result.output


def test_warn_mode_passes_unless_asked_to_fail(tmp_path):
    policy = yaml.safe_load((EXAMPLES / "02-releasepolicy-production.yaml").read_text())
    policy["spec"]["admission"]["mode"] = "Warn"
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    args = ["check", "-f", str(EXAMPLES / "05-deployments.yaml"), "--policy", str(tmp_path / "policy.yaml"),
            "--now", WEDNESDAY]
    assert run(*args).exit_code == 0
    assert run(*args, "--fail-on-warnings").exit_code == 1


def test_invalid_inputs_are_explained(tmp_path):
    (tmp_path / "broken.yaml").write_text("kind: [unclosed")
    result = run("check", "-f", str(tmp_path / "broken.yaml"))
    assert result.exit_code != 0 and "is not valid YAML" in result.output
    (tmp_path / "empty.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    result = run("check", "-f", str(tmp_path / "empty.yaml"))
    assert "no Deployment, StatefulSet or DaemonSet" in result.output
    bad_policy = tmp_path / "policy.yaml"
    bad_policy.write_text(yaml.safe_dump({"kind": "ReleasePolicy", "metadata": {"name": "p"},
                                          "spec": {"tiers": {"low": {"steps": [50, 10]}}}}))
    result = run("check", "-f", str(EXAMPLES / "05-deployments.yaml"), "--policy", str(bad_policy))
    assert "strictly increasing" in result.output
