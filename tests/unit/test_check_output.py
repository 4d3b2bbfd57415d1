"""`kubectl ballast check` in a pipeline: manifests on standard input, JSON and SARIF output, exit statuses.

The renderers are checked over judgements made by the real rules; `-f -` is checked end to end by running
the installed `kubectl-ballast` as kubectl would, with a `helm template`-shaped stream on its standard input.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ballast.api.releasepolicy import AdmissionMode, ReleasePolicySpec
from ballast.cli.check_report import RULE_SUMMARIES, Checked, Report, Source, as_json, helm_template, sarif, text
from ballast.policy.rules import AdmissionContext, Decision, Finding, Rule, WorkloadRequest, evaluate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLUGIN = Path(sys.executable).parent / "kubectl-ballast"
WEDNESDAY = "2026-11-25T12:00:00Z"
GOOD_ANNOTATIONS = {"ballast.dev/owner": "payments", "ballast.dev/alerts": "CheckoutDown",
                    "ballast.dev/runbook": "https://runbooks.example.com/checkout"}


def workload(name: str, annotations: dict[str, str] | None = None, kind: str = "Deployment") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "annotations": annotations or {}},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}}}


def judged(name: str, annotations: dict[str, str] | None, mode: AdmissionMode, line: int = 1) -> Checked:
    policy = ReleasePolicySpec.model_validate({"admission": {"mode": mode}})
    request = WorkloadRequest("CREATE", "Deployment", "shop", name, new=workload(name, annotations))
    decision = evaluate(request, AdmissionContext("production", policy, [], datetime(2026, 11, 25, tzinfo=UTC)))
    return Checked("Deployment", "shop", name, Source("deploy.yaml", line, line * 10), decision)


# -- SARIF 2.1.0, the parts a code scanning upload reads -------------------------------------------------------
# Written down from the OASIS SARIF 2.1.0 schema (sarif-schema-2.1.0.json): "required" lists the properties
# the schema requires, "types" the JSON types of those Ballast writes, "enum" the allowed values.

SARIF_2_1_0: dict[str, dict[str, Any]] = {
    "sarifLog": {"required": ["version", "runs"], "types": {"version": str, "runs": list, "$schema": str},
                 "enum": {"version": ["2.1.0"]}, "items": {"runs": "run"}},
    "run": {"required": ["tool"], "types": {"tool": dict, "results": list, "properties": dict},
            "objects": {"tool": "tool"}, "items": {"results": "result"}},
    "tool": {"required": ["driver"], "types": {"driver": dict}, "objects": {"driver": "toolComponent"}},
    "toolComponent": {"required": ["name"], "types": {"name": str, "version": str, "rules": list},
                      "items": {"rules": "reportingDescriptor"}},
    "reportingDescriptor": {"required": ["id"], "types": {"id": str, "shortDescription": dict,
                                                          "defaultConfiguration": dict},
                            "objects": {"shortDescription": "message", "defaultConfiguration": "configuration"}},
    "configuration": {"required": [], "types": {"level": str},
                      "enum": {"level": ["none", "note", "warning", "error"]}},
    "message": {"required": ["text"], "types": {"text": str}},
    "result": {"required": ["message"], "types": {"ruleId": str, "ruleIndex": int, "level": str, "message": dict,
                                                 "locations": list, "properties": dict},
               "enum": {"level": ["none", "note", "warning", "error"]},
               "objects": {"message": "message"}, "items": {"locations": "location"}},
    "location": {"required": [], "types": {"physicalLocation": dict, "logicalLocations": list},
                 "objects": {"physicalLocation": "physicalLocation"}, "items": {"logicalLocations": "logicalLocation"}},
    "physicalLocation": {"required": ["artifactLocation"], "types": {"artifactLocation": dict, "region": dict},
                         "objects": {"artifactLocation": "artifactLocation", "region": "region"}},
    "artifactLocation": {"required": ["uri"], "types": {"uri": str}},
    "region": {"required": [], "types": {"startLine": int}, "minimum": {"startLine": 1}},
    "logicalLocation": {"required": [], "types": {"fullyQualifiedName": str, "kind": str}},
}


def sarif_problems(value: Any, definition: str = "sarifLog", where: str = "$") -> list[str]:
    """Where ``value`` departs from the structure above (empty: it conforms)."""
    shape = SARIF_2_1_0[definition]
    if not isinstance(value, dict):
        return [f"{where} is not an object ({definition})"]
    problems = [f"{where}.{key} is required" for key in shape["required"] if key not in value]
    problems += [f"{where}.{key} is not {kind.__name__}" for key, kind in shape["types"].items()
                 if key in value and (not isinstance(value[key], kind) or isinstance(value[key], bool))]
    problems += [f"{where}.{key} = {value.get(key)!r}" for key, allowed in shape.get("enum", {}).items()
                 if key in value and value[key] not in allowed]
    problems += [f"{where}.{key} < {low}" for key, low in shape.get("minimum", {}).items()
                 if isinstance(value.get(key), int) and value[key] < low]
    for key, inner in shape.get("objects", {}).items():
        if isinstance(value.get(key), dict):
            problems += sarif_problems(value[key], inner, f"{where}.{key}")
    for key, inner in shape.get("items", {}).items():
        for index, item in enumerate(value.get(key) or []):
            problems += sarif_problems(item, inner, f"{where}.{key}[{index}]")
    return problems


def test_the_sarif_structure_check_catches_departures():
    good = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [
        {"message": {"text": "m"}, "level": "error",
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a"}, "region": {"startLine": 1}}}]}]}]}
    assert sarif_problems(good) == []
    bad = json.loads(json.dumps(good))
    bad["runs"][0]["results"][0]["level"] = "fatal"
    bad["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    del bad["runs"][0]["tool"]["driver"]["name"]
    assert sarif_problems(bad) == ["$.runs[0].tool.driver.name is required", "$.runs[0].results[0].level = 'fatal'",
                                   "$.runs[0].results[0].locations[0].physicalLocation.region.startLine < 1"]


def test_sarif_has_one_rule_per_admission_rule_and_a_located_result_per_finding():
    report = Report("production", AdmissionMode.ENFORCE,
                    [judged("checkout", GOOD_ANNOTATIONS, AdmissionMode.ENFORCE, line=1),
                     judged("bare", {}, AdmissionMode.ENFORCE, line=2)])
    log = sarif(report, "0.1.0")
    assert sarif_problems(log) == []
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [str(rule) for rule in Rule]
    # The bare Deployment misses all three annotations: three results, each pointing at its rule and its file.
    assert len(run["results"]) == 3
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "required-annotations"
        assert result["level"] == "error"
        assert result["message"]["text"].startswith("Deployment shop/bare is missing annotation ballast.dev/")
        (location,) = result["locations"]
        assert location["physicalLocation"] == {"artifactLocation": {"uri": "deploy.yaml"}, "region": {"startLine": 20}}
        assert location["logicalLocations"] == [{"fullyQualifiedName": "shop/Deployment/bare", "kind": "resource"}]
        assert result["properties"] == {"document": 2, "outcome": "refused"}
    assert {r["id"]: r["defaultConfiguration"]["level"] for r in rules}["tier-downgrade"] == "warning"


def test_every_rule_has_a_summary():
    assert set(RULE_SUMMARIES) == set(Rule)


def test_levels_follow_what_the_api_server_would_do():
    # Warn admits with warnings: the same finding is a warning, and the workload is admitted.
    warned = judged("bare", {}, AdmissionMode.WARN)
    assert warned.outcome == "warned"
    assert {warned.level(f) for f in warned.decision.findings} == {"warning"}
    assert {r["level"] for r in sarif(Report("p", AdmissionMode.WARN, [warned]), "0")["runs"][0]["results"]} == \
        {"warning"}
    # A finding that never refuses by itself stays a warning under Enforce.
    advisory = Checked("Deployment", "shop", "web", Source("-", 1, 1),
                       Decision(allowed=True, mode=AdmissionMode.ENFORCE,
                                findings=[Finding(Rule.TIER_DOWNGRADE, "moves to a laxer tier", blocking=False)]))
    assert advisory.outcome == "warned" and advisory.level(advisory.decision.findings[0]) == "warning"
    assert judged("checkout", GOOD_ANNOTATIONS, AdmissionMode.ENFORCE).outcome == "admitted"


def test_json_and_text_say_the_same_things():
    report = Report("production", AdmissionMode.ENFORCE,
                    [judged("checkout", GOOD_ANNOTATIONS, AdmissionMode.ENFORCE, line=1),
                     judged("bare", {}, AdmissionMode.ENFORCE, line=2)])
    data = as_json(report)
    assert data["summary"] == {"workloads": 2, "refused": 1, "warned": 0}
    assert [(w["name"], w["outcome"], len(w["findings"])) for w in data["workloads"]] == \
        [("checkout", "admitted", 0), ("bare", "refused", 3)]
    assert data["workloads"][1]["source"] == {"file": "deploy.yaml", "document": 2, "line": 20, "template": None}
    assert {f["rule"] for f in data["workloads"][1]["findings"]} == {"required-annotations"}
    json.dumps(data)  # plain data all the way down
    lines = text(report).splitlines()
    assert lines[0] == "OK       Deployment shop/checkout  (deploy.yaml:10, document 1)"
    assert lines[1] == "REFUSED  Deployment shop/bare  (deploy.yaml:20, document 2)"
    assert lines[-1] == "2 workload(s): 1 refused, 0 with warnings (ReleasePolicy production, mode Enforce)."


@pytest.mark.parametrize(("stream", "start", "expected"), [
    ("---\n# Source: shop/templates/web.yaml\napiVersion: apps/v1\n", 2, "shop/templates/web.yaml"),
    ("# Source: shop/templates/a.yaml\nkind: A\n---\nkind: B\n", 3, None),  # the comment belongs to the first
    ("kind: A\n", 0, None),
])
def test_helm_source_comments_name_the_template(stream, start, expected):
    assert helm_template(stream.splitlines(), start) == expected


# -- end to end: the installed plugin, reading a `helm template`-shaped stream on standard input -----------------

HELM_STREAM = """\
---
# Source: shop/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: shop
---
# Source: shop/templates/checkout.yaml
{checkout}
---
# Source: shop/templates/empty.yaml
---
# Source: shop/templates/workers.yaml
apiVersion: v1
kind: List
items:
{workers}
"""


def helm_stream() -> str:
    indented = "\n".join("  " + line for line in yaml.safe_dump(
        [workload("worker", GOOD_ANNOTATIONS, kind="StatefulSet"), workload("bare", kind="DaemonSet")],
        sort_keys=False).splitlines())
    return HELM_STREAM.format(checkout=yaml.safe_dump(workload("checkout", GOOD_ANNOTATIONS), sort_keys=False),
                              workers=indented)


def plugin(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PLUGIN), "check", *args], input=stdin, capture_output=True, text=True, timeout=60,
                          check=False)


def test_standard_input_multi_document_and_lists_end_to_end():
    result = plugin("-f", "-", "-n", "shop", "--now", WEDNESDAY, stdin=helm_stream())
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "OK       Deployment shop/checkout  (stdin:9, document 2, from shop/templates/checkout.yaml)"
    # The List's items are located at their own lines, and carry the template of the List around them.
    worker, bare = [n for n, line in enumerate(helm_stream().splitlines(), 1) if line.startswith("  - apiVersion")]
    template = "from shop/templates/workers.yaml"
    assert lines[1] == f"OK       StatefulSet shop/worker  (stdin:{worker}, document 4, {template})"
    assert lines[2] == f"REFUSED  DaemonSet shop/bare  (stdin:{bare}, document 4, {template})"
    assert "DaemonSet shop/bare is missing annotation ballast.dev/owner" in result.stdout
    assert lines[-1] == "3 workload(s): 1 refused, 0 with warnings (ReleasePolicy default, mode Enforce)."


def test_sarif_and_json_from_standard_input_end_to_end():
    result = plugin("-f", "-", "-n", "shop", "-o", "sarif", stdin=helm_stream())
    assert result.returncode == 1, result.stderr
    log = json.loads(result.stdout)  # stdout holds the document alone
    assert sarif_problems(log) == []
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]}
    assert uris == {"shop/templates/workers.yaml"}
    result = plugin("-f", "-", "-o", "json", stdin=yaml.safe_dump(workload("checkout", GOOD_ANNOTATIONS)))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["workloads"][0]["source"] == \
        {"file": "-", "document": 1, "line": 1, "template": None}


def test_exit_status_two_when_nothing_could_be_judged():
    result = plugin("-f", "-", stdin="kind: [unclosed")
    assert result.returncode == 2
    assert "standard input is not valid YAML" in result.stderr and result.stdout == ""
    result = plugin("-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert result.returncode == 2 and "no Deployment, StatefulSet or DaemonSet" in result.stderr
    assert plugin("-f", "-", "-o", "xml", stdin="").returncode == 2


def test_warnings_fail_only_when_asked_end_to_end(tmp_path):
    policy = yaml.safe_load((EXAMPLES / "02-releasepolicy-production.yaml").read_text())
    policy["spec"]["admission"]["mode"] = "Warn"
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    stdin = yaml.safe_dump(workload("bare"))
    args = ("-f", "-", "--policy", str(tmp_path / "policy.yaml"), "--now", WEDNESDAY, "-o", "json")
    warned = plugin(*args, stdin=stdin)
    assert warned.returncode == 0, warned.stderr
    assert json.loads(warned.stdout)["workloads"][0]["outcome"] == "warned"
    assert plugin(*args, "--fail-on-warnings", stdin=stdin).returncode == 1


def test_a_directory_is_read_like_kubectl_apply_reads_it(tmp_path):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(workload("checkout", GOOD_ANNOTATIONS)))
    (tmp_path / "b.yml").write_text(yaml.safe_dump(workload("bare")))
    (tmp_path / "notes.txt").write_text("not a manifest")
    result = plugin("-f", str(tmp_path), "-o", "json", stdin="")
    assert result.returncode == 1, result.stderr
    assert [(w["name"], Path(w["source"]["file"]).name) for w in json.loads(result.stdout)["workloads"]] == \
        [("checkout", "a.yaml"), ("bare", "b.yml")]
    missing = plugin("-f", str(tmp_path / "nope.yaml"), stdin="")
    assert missing.returncode == 2 and "nope.yaml does not exist" in missing.stderr
