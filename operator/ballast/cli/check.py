"""``kubectl ballast check``: the admission rules, offline, for a service team's CI pipeline.

Evaluates the very functions the webhook calls, against manifests on disk or on standard input (so
``helm template ... | kubectl ballast check -f -`` works), a policy on disk (or the
defaults) and ServiceOwnerships on disk, and exits non-zero when the API server would refuse.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from ballast.api.releasepolicy import ReleasePolicy, ReleasePolicySpec
from ballast.api.serviceownership import ServiceOwnership
from ballast.cli.check_report import Checked, Report, Source, as_json, helm_template, sarif, text
from ballast.policy.ownership import NamedOwnership
from ballast.policy.rules import AdmissionContext, WorkloadRequest, evaluate
from ballast.policy.workloads import WORKLOAD_KINDS


class CannotCheck(click.ClickException):
    """The manifests, the policy or the ownerships could not be read: nothing was judged (exit status 2)."""

    exit_code = 2


def _files(path: Path) -> list[Path]:
    """A file as given, or the manifests directly in a directory (as ``kubectl apply -f DIR`` takes them)."""
    if str(path) != "-" and not path.exists():
        raise CannotCheck(f"{path} does not exist: give a manifest file, a directory of them, or - for standard input")
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
    return [path]


def _read(path: Path) -> list[tuple[dict[str, Any], Source]]:
    """The objects in one file (``-``: standard input), each with where it starts; Lists are opened."""
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    lines, found = text.splitlines(), []
    loader = yaml.SafeLoader(text)
    try:
        document = 0
        while loader.check_node():
            node, document = loader.get_node(), document + 1
            assert node is not None  # check_node() said one follows
            doc = loader.construct_document(node)
            if not isinstance(doc, dict):
                continue  # empty documents (Helm renders some) and scalars
            start = node.start_mark.line
            origin = Source(str(path), document, start + 1, helm_template(lines, start))
            if not str(doc.get("kind", "")).endswith("List"):
                found.append((doc, origin))
                continue
            # Lists (`kubectl get -o yaml`) hold their objects in items: each is located at its own line.
            item_nodes: list[yaml.Node] = next((v.value for k, v in node.value if k.value == "items"), [])
            found += [(item, replace(origin, line=item_node.start_mark.line + 1))
                      for item, item_node in zip(doc.get("items") or [], item_nodes, strict=False)
                      if isinstance(item, dict)]
    except yaml.YAMLError as error:
        raise CannotCheck(f"{'standard input' if str(path) == '-' else path} is not valid YAML: {error}") from None
    finally:
        loader.dispose()
    return found


def _load(model: type, doc: dict[str, Any], origin: str) -> Any:
    try:
        return model.model_validate(doc).spec
    except ValidationError as error:
        raise CannotCheck(f"{origin}: {doc.get('kind')} {doc.get('metadata', {}).get('name')} is invalid: {error}") \
            from None


@click.command("check")
@click.option("-f", "--filename", "manifests", type=click.Path(allow_dash=True, path_type=Path), multiple=True,
              required=True, help="Manifests to check: a file, a directory of them, or - for standard input "
              "(e.g. from helm template); repeatable.")
@click.option("--policy", "policy_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A ReleasePolicy to check against; the defaults when left out.")
@click.option("--ownership", "ownership_paths", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              multiple=True, help="ServiceOwnerships the workloads belong to (repeatable).")
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace for manifests that name none.")
@click.option("--now", "now_text", default=None, help="Instant for freeze windows (RFC 3339); default: now.")
@click.option("--fail-on-warnings", is_flag=True, help="Exit non-zero on warnings too (Warn/Audit policies).")
@click.option("-o", "--output", type=click.Choice(["text", "json", "sarif"]), default="text", show_default=True,
              help="text for people, json for scripts, sarif (2.1.0) for code scanning annotations.")
def check(manifests: tuple[Path, ...], policy_path: Path | None, ownership_paths: tuple[Path, ...],
          namespace: str, now_text: str | None, fail_on_warnings: bool, output: str) -> None:
    """Check workload manifests against Ballast's admission rules, without a cluster.

    \b
    Exit status:
      0  every workload would be admitted (warnings allowed unless --fail-on-warnings)
      1  a workload would be refused (or, with --fail-on-warnings, warned about)
      2  nothing was judged: unreadable YAML, an invalid policy or ownership, no workload, a bad option
    """
    docs = [found for given in manifests for path in _files(given) for found in _read(path)]
    policy_name, policy = "default", ReleasePolicySpec()
    if policy_path is not None:
        policies = [d for d, _ in _read(policy_path) if d.get("kind") == "ReleasePolicy"]
        if len(policies) != 1:
            raise CannotCheck(f"{policy_path} must hold exactly one ReleasePolicy, found {len(policies)}")
        parsed = _load(ReleasePolicy, policies[0], str(policy_path))
        policy_name, policy = policies[0]["metadata"]["name"], parsed
    ownerships = [
        (d.get("metadata", {}).get("namespace") or namespace,
         NamedOwnership(d["metadata"]["name"], _load(ServiceOwnership, d, str(origin))))
        for d, origin in [*docs, *(found for p in ownership_paths for found in _read(p))]
        if d.get("kind") == "ServiceOwnership"
    ]
    now = datetime.fromisoformat(now_text) if now_text else datetime.now(UTC)
    if now.tzinfo is None:
        raise click.BadParameter("give a UTC offset, e.g. 2026-11-27T18:00:00Z", param_hint="--now")

    workloads = [(d, origin) for d, origin in docs if d.get("kind") in WORKLOAD_KINDS]
    if not workloads:
        raise CannotCheck("no Deployment, StatefulSet or DaemonSet found in the manifests")
    checked = []
    for doc, origin in workloads:
        metadata = doc.get("metadata") or {}
        ns = metadata.get("namespace") or namespace
        request = WorkloadRequest("CREATE", doc["kind"], ns, metadata.get("name") or "", new=doc)
        context = AdmissionContext(policy_name, policy, [o for n, o in ownerships if n == ns], now)
        checked.append(Checked(doc["kind"], ns, request.name, origin, evaluate(request, context)))
    report = Report(policy_name, policy.admission.mode, checked)
    if output == "text":
        click.echo(text(report))
    else:
        data = as_json(report) if output == "json" else sarif(report, version("ballast"))
        click.echo(json.dumps(data, indent=2))
    if report.count("refused") or (fail_on_warnings and report.count("warned")):
        raise SystemExit(1)
