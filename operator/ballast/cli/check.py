"""``kubectl ballast check``: the admission rules, offline, for a service team's CI pipeline.

Evaluates the very functions the webhook calls, against manifests on disk, a policy on disk (or the
defaults) and ServiceOwnerships on disk, and exits non-zero when the API server would refuse.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from ballast.api.releasepolicy import ReleasePolicy, ReleasePolicySpec
from ballast.api.serviceownership import ServiceOwnership
from ballast.policy.ownership import NamedOwnership
from ballast.policy.rules import AdmissionContext, WorkloadRequest, evaluate
from ballast.policy.workloads import WORKLOAD_KINDS


def _documents(paths: tuple[Path, ...]) -> list[dict[str, Any]]:
    docs = []
    for path in paths:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
        try:
            docs += [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except yaml.YAMLError as error:
            raise click.ClickException(f"{path} is not valid YAML: {error}") from None
    # Lists (`kubectl get -o yaml`) hold their objects in items.
    return [item for d in docs for item in (d.get("items", []) if d.get("kind", "").endswith("List") else [d])]


def _load(model: type, doc: dict[str, Any], origin: str) -> Any:
    try:
        return model.model_validate(doc)
    except ValidationError as error:
        raise click.ClickException(f"{origin}: {doc.get('kind')} {doc.get('metadata', {}).get('name')} "
                                   f"is invalid: {error}") from None


@click.command("check")
@click.option("-f", "--filename", "manifests", type=click.Path(allow_dash=True, path_type=Path), multiple=True,
              required=True, help="Manifests to check (repeatable; - reads standard input).")
@click.option("--policy", "policy_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A ReleasePolicy to check against; the defaults when left out.")
@click.option("--ownership", "ownership_paths", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              multiple=True, help="ServiceOwnerships the workloads belong to (repeatable).")
@click.option("-n", "--namespace", default="default", show_default=True,
              help="Namespace for manifests that name none.")
@click.option("--now", "now_text", default=None, help="Instant for freeze windows (RFC 3339); default: now.")
@click.option("--fail-on-warnings", is_flag=True, help="Exit non-zero on warnings too (Warn/Audit policies).")
def check(manifests: tuple[Path, ...], policy_path: Path | None, ownership_paths: tuple[Path, ...],
          namespace: str, now_text: str | None, fail_on_warnings: bool) -> None:
    """Check workload manifests against Ballast's admission rules, without a cluster.

    Exit status: 0 when every workload would be admitted, 1 when any would be refused.
    """
    docs = _documents(manifests)
    policy_name, policy = "default", ReleasePolicySpec()
    if policy_path is not None:
        policies = [d for d in _documents((policy_path,)) if d.get("kind") == "ReleasePolicy"]
        if len(policies) != 1:
            raise click.ClickException(f"{policy_path} must hold exactly one ReleasePolicy, found {len(policies)}")
        parsed = _load(ReleasePolicy, policies[0], str(policy_path))
        policy_name, policy = policies[0]["metadata"]["name"], parsed.spec
    ownerships = [
        (d.get("metadata", {}).get("namespace") or namespace,
         NamedOwnership(d["metadata"]["name"], _load(ServiceOwnership, d, origin).spec))
        for origin, d in [(str(p), d) for p in ownership_paths for d in _documents((p,))]
        + [("manifests", d) for d in docs]
        if d.get("kind") == "ServiceOwnership"
    ]
    now = datetime.fromisoformat(now_text) if now_text else datetime.now(UTC)
    if now.tzinfo is None:
        raise click.BadParameter("give a UTC offset, e.g. 2026-11-27T18:00:00Z", param_hint="--now")

    workloads = [d for d in docs if d.get("kind") in WORKLOAD_KINDS]
    if not workloads:
        raise click.ClickException("no Deployment, StatefulSet or DaemonSet found in the manifests")
    refused = warned = 0
    for doc in workloads:
        metadata = doc.get("metadata") or {}
        ns = metadata.get("namespace") or namespace
        request = WorkloadRequest("CREATE", doc["kind"], ns, metadata.get("name") or "", new=doc)
        context = AdmissionContext(policy_name, policy, [o for n, o in ownerships if n == ns], now)
        decision = evaluate(request, context)
        subject = f"{doc['kind']} {ns}/{request.name}"
        if not decision.allowed:
            refused += 1
            click.echo(f"REFUSED  {subject}")
            for finding in decision.findings:
                click.echo(f"  - {finding.message}")
        elif decision.findings:
            warned += 1
            click.echo(f"WARNING  {subject}")
            for finding in decision.findings:
                click.echo(f"  - {finding.message}")
        else:
            click.echo(f"OK       {subject}")
    click.echo(f"{len(workloads)} workload(s): {refused} refused, {warned} with warnings "
               f"(ReleasePolicy {policy_name}, mode {policy.admission.mode}).")
    if refused or (fail_on_warnings and warned):
        raise SystemExit(1)
