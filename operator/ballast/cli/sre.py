"""The SRE's read-only views: ``kubectl ballast status|history|describe|scoreboard``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import kubernetes

from ballast.api.checks import LATENCY_CHECK
from ballast.api.common import GROUP, VERSION, parse_duration
from ballast.api.release import FINAL_PHASES, CheckResult, Release, ReleaseStatus, TrafficSample
from ballast.api.releasepolicy import FreezeRefusal
from ballast.cli.common import connect, kubeconfig_option, namespace_option
from ballast.cli.render import emit, no_color_option, output_option
from ballast.release.scoreboard import ScoredRelease, scoreboard

all_namespaces_option = click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace.")


def _list(client: kubernetes.client.ApiClient, plural: str, namespace: str | None) -> list[dict[str, Any]]:
    api = kubernetes.client.CustomObjectsApi(client)
    if namespace is None or plural == "releasepolicies":  # policies are cluster-scoped
        return api.list_cluster_custom_object(GROUP, VERSION, plural)["items"]
    return api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]


def _created(body: dict[str, Any]) -> str:
    return body["metadata"].get("creationTimestamp") or ""


def _last_verdict(release: dict[str, Any] | None) -> str | None:
    analyses = ((release or {}).get("status") or {}).get("analyses") or []
    return analyses[-1]["verdict"] if analyses else None


def _frozen(policies: list[dict[str, Any]], namespace: str, tier: str) -> str:
    for policy in policies:
        status = policy.get("status") or {}
        if namespace in (status.get("governedNamespaces") or []):
            windows = [f["name"] for f in status.get("activeFreezes") or [] if tier in f.get("tiers", [])]
            return f"yes ({', '.join(windows)})" if windows else "no"
    return "ungoverned"


@click.command("status")
@kubeconfig_option
@namespace_option
@all_namespaces_option
@output_option
@no_color_option
def status(kubeconfig: str | None, namespace: str | None, all_namespaces: bool, output: str, no_color: bool) -> None:
    """One row per service: owner, tier, current release phase and weight, last verdict, freeze state."""
    client, namespace = connect(kubeconfig, namespace)
    scope = None if all_namespaces else namespace
    ownerships = _list(client, "serviceownerships", scope)
    releases = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in _list(client, "releases", scope)}
    policies = _list(client, "releasepolicies", None)
    rows = []
    for so in sorted(ownerships, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"])):
        ns, spec, so_status = so["metadata"]["namespace"], so["spec"], so.get("status") or {}
        reference = so_status.get("currentRelease") or so_status.get("lastRelease") or {}
        release = releases.get((ns, reference.get("name", "")))
        release_status = (release or {}).get("status") or {}
        rows.append({
            "namespace": ns, "service": so["metadata"]["name"], "owner": spec.get("owner"),
            "tier": spec.get("riskTier", "medium"), "release": reference.get("name"),
            "phase": release_status.get("phase"), "weight": release_status.get("weight"),
            "reached": release_status.get("reachedWeight"),
            "routing": release_status.get("routing", "ReplicaSplit") if release_status else None,
            "route": route_text(release_status.get("route"), release_status.get("phase")),
            "last_verdict": _last_verdict(release), "frozen": _frozen(policies, ns, spec.get("riskTier", "medium")),
        })
    emit(rows, ["namespace", "service", "owner", "tier", "release", "phase", "weight", "reached", "routing",
                "route", "last_verdict", "frozen"], output, no_color)


def route_text(route: dict[str, Any] | None, phase: str | None) -> str | None:
    """An HTTPRoute a release drives and the weights Ballast set on it, e.g. ``shop stable=95 canary=5``."""
    if not route:
        return None
    if phase in {p.value for p in FINAL_PHASES}:
        return f"{route['name']} (restored)"
    if route.get("canaryWeight") is None:
        return f"{route['name']} (untouched)"
    return f"{route['name']} stable={route.get('stableWeight')} canary={route['canaryWeight']}"


@click.command("history")
@click.argument("service")
@kubeconfig_option
@namespace_option
@output_option
@no_color_option
def history(service: str, kubeconfig: str | None, namespace: str | None, output: str, no_color: bool) -> None:
    """The releases of SERVICE (a ServiceOwnership), oldest first."""
    client, namespace = connect(kubeconfig, namespace)
    rows = []
    for body in sorted(_list(client, "releases", namespace), key=_created):
        if body["spec"].get("service") != service:
            continue
        release = Release.model_validate(body)
        st = release.status
        took = (st.finished_at - datetime.fromisoformat(_created(body))).total_seconds() \
            if st and st.finished_at else None
        rows.append({
            "release": body["metadata"]["name"], "created": _created(body), "phase": st.phase if st else None,
            "reason": st.reason if st else None, "from": ",".join(release.spec.from_images) or None,
            "to": ",".join(release.spec.to_images) or None,
            "author": release.spec.changed_by.username if release.spec.changed_by else None,
            "approver": st.approved_by.username if st and st.approved_by else None,
            "change": release.spec.change_type, "seconds": took,
        })
    if not rows and output == "table":
        raise click.ClickException(f"No releases of service {service} in namespace {namespace}.")
    emit(rows, ["release", "created", "phase", "reason", "from", "to", "author", "approver", "change", "seconds"],
         output, no_color)


def _side(sample: TrafficSample) -> str:
    if sample.requests is None:
        return "no data"
    rate = "-" if sample.error_rate is None else f"{sample.error_rate:.2%}"
    return f"{sample.errors or 0:.0f}/{sample.requests:.0f} errors ({rate})"


def _figure(check: CheckResult, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if check.name == LATENCY_CHECK else f"{value:g}"


def _check_line(check: CheckResult) -> str:
    samples = "" if check.samples is None else f" over {check.samples:.0f} requests"
    return (f"      check {check.name} ({check.source})  {check.verdict.value:<12} "
            f"canary {_figure(check, check.canary)}, baseline {_figure(check, check.baseline)}{samples}: "
            f"{check.message}")


def _analysis_lines(status: ReleaseStatus) -> list[str]:
    """Every analysis with its numbers, and under it every check it judged."""
    lines = ["Analyses:"]
    if not status.analyses:
        lines.append("  (none yet)")
    for a in status.analyses:
        lines.append(f"  step {a.step + 1} at {a.weight}%  {a.window_start:%H:%M:%S}-{a.window_end:%H:%M:%S}  "
                     f"{a.verdict.value:<12} canary {_side(a.canary)}, baseline {_side(a.baseline)}")
        lines.append(f"      {a.message}")
        lines += [_check_line(check) for check in a.checks]
    return lines


@click.command("describe")
@click.argument("release")
@kubeconfig_option
@namespace_option
def describe(release: str, kubeconfig: str | None, namespace: str | None) -> None:
    """Everything about RELEASE: the change, who made and approved it, every step and analysis."""
    client, namespace = connect(kubeconfig, namespace)
    try:
        body = kubernetes.client.CustomObjectsApi(client).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "releases", release)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise click.ClickException(f"Release {namespace}/{release} does not exist.") from None
        raise
    model = Release.model_validate(body)
    spec, st = model.spec, model.status
    lines = [
        f"Release:     {namespace}/{release}",
        f"Deployment:  {spec.deployment}   Service: {spec.service or '-'}   Owner: {spec.owner or '-'}",
        f"Tier:        {spec.tier.value}   Policy: {spec.policy or '-'}   Change type: {spec.change_type}",
        f"Revision:    {spec.from_revision or '-'} -> {spec.to_revision}",
        f"Images:      {', '.join(spec.from_images) or '-'} -> {', '.join(spec.to_images) or '-'}",
        f"Changed by:  {spec.changed_by.username if spec.changed_by else '-'}",
        f"Approved by: {st.approved_by.username if st and st.approved_by else '-'}",
    ]
    if spec.emergency:
        lines.append(f"Break-glass: {spec.emergency}")
    lines.append(f"Steps:       {', '.join(f'{w}%' for w in spec.steps)}")
    if st is not None:
        lines += [
            f"Phase:       {st.phase.value}   Step: {'-' if st.step is None else st.step + 1}   "
            f"Weight: {'-' if st.weight is None else f'{st.weight}%'}   "
            f"Reached: {'-' if st.reached_weight is None else f'{st.reached_weight}%'}",
            f"Reason:      {st.reason or '-'}",
            f"Message:     {st.message or '-'}",
            f"Started:     {st.started_at.isoformat() if st.started_at else '-'}   "
            f"Finished: {st.finished_at.isoformat() if st.finished_at else '-'}",
        ]
        if st.blocked_by:
            lines.append(f"Held by:     {', '.join(st.blocked_by)}")
        if st.weight_warning:
            lines.append(f"Warning:     {st.weight_warning}")
        lines.append(f"Routing:     {st.routing.value}")
        if st.route is not None:
            lines.append(f"Route:       HTTPRoute {st.route.name}, backend {st.route.backend}: "
                         f"{route_text(st.route.to_wire(), st.phase.value)} (Services {st.route.stable_service}, "
                         f"{st.route.canary_service})")
        lines += _analysis_lines(st)
    click.echo("\n".join(lines))


@click.command("scoreboard")
@click.option("--since", "period", default="7d", show_default=True,
              help="How far back to look, as a duration (e.g. 7d, 30d).")
@kubeconfig_option
@namespace_option
@all_namespaces_option
@output_option
@no_color_option
def score(period: str, kubeconfig: str | None, namespace: str | None, all_namespaces: bool, output: str,
          no_color: bool) -> None:
    """Per team and tier: deployment frequency, lead time, change failure rate, time to restore, holds."""
    client, namespace = connect(kubeconfig, namespace)
    try:
        window = parse_duration(period)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--since") from None
    until = datetime.now(UTC)
    scope = None if all_namespaces else namespace
    records = [ScoredRelease.from_body(b) for b in _list(client, "releases", scope)]
    refusals = [FreezeRefusal.model_validate(r) for policy in _list(client, "releasepolicies", None)
                for r in (policy.get("status") or {}).get("freezeRefusals") or []
                if scope is None or r.get("namespace") == scope]
    rows = [vars(row) for row in scoreboard(records, until - window, until, refusals)]
    emit(rows, ["team", "tier", "releases", "promoted", "rolled_back", "deployment_frequency_per_week",
                "lead_time_median_seconds", "change_failure_rate", "mean_time_to_restore_seconds",
                "blocked_by_freeze", "blocked_by_wip", "blocked_by_budget", "break_glass", "stability_share"],
         output, no_color)
