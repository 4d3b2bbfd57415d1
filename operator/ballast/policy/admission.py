"""Admission rules for workloads, as one pure function over plain data.

The webhook, the background audit and ``kubectl ballast check`` all call :func:`evaluate`, so a
workload is judged identically online, in the audit and in a service team's CI pipeline. Inputs are
snapshots (the request, the governing policy, the namespace's ServiceOwnerships, the known alert
rules, the clock); nothing here performs I/O.

Contract with the release engine: when it rolls a revision back it records the pod template's hash
and the time in the workload annotation :data:`ROLLED_BACK_ANNOTATION` as a JSON object
``{"<template hash>": "<RFC 3339 time>"}``. Admission reads it from the stored (old) object, so a
user cannot drop it in the same request that re-applies the revision.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ballast.api.common import RiskTier, parse_duration
from ballast.api.releasepolicy import AdmissionMode, FreezeRefusal, ReleasePolicySpec
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.policy.freeze import freezing
from ballast.policy.workloads import annotation_problems, parse_alerts, template_hash

EMERGENCY_ANNOTATION = "ballast.dev/emergency"
RETRY_ANNOTATION = "ballast.dev/retry"
ROLLED_BACK_ANNOTATION = "ballast.dev/rolled-back-revisions"
DEFAULT_TIER = RiskTier.MEDIUM
"""Tier of a workload no ServiceOwnership selects."""


class Rule(StrEnum):
    """Names of the rules, as they appear in messages, metrics and ``kubectl ballast check`` output."""

    REQUIRED_ANNOTATIONS = "required-annotations"
    OWNERSHIP = "ownership"
    AMBIGUOUS_OWNERSHIP = "ambiguous-ownership"
    ALERTS_EXIST = "alerts-exist"
    FREEZE_WINDOW = "freeze-window"
    ROLLED_BACK_REVISION = "rolled-back-revision"


@dataclass(frozen=True)
class WorkloadRequest:
    """The parts of an AdmissionReview request the rules need."""

    operation: str
    """CREATE, UPDATE or DELETE."""
    kind: str
    namespace: str
    name: str
    new: Mapping[str, Any] | None = None
    old: Mapping[str, Any] | None = None
    subresource: str | None = None
    username: str = ""


@dataclass(frozen=True)
class NamedOwnership:
    name: str
    spec: ServiceOwnershipSpec


@dataclass(frozen=True)
class AdmissionContext:
    """Everything besides the request that the rules read."""

    policy_name: str
    policy: ReleasePolicySpec
    ownerships: Sequence[NamedOwnership]
    now: datetime
    known_alerts: frozenset[str] | None = None
    """Alerting rules loaded in Prometheus; None when Prometheus could not be asked."""

    def finding(self, rule: Rule, text: str, blocking: bool = True) -> Finding:
        """A finding whose message ends by naming the policy and the rule."""
        return Finding(rule, f"{text} (ReleasePolicy {self.policy_name}, rule {rule}).", blocking)


@dataclass(frozen=True)
class Finding:
    """One rule broken by the request. ``blocking`` findings refuse in Enforce mode."""

    rule: Rule
    message: str
    blocking: bool = True


@dataclass(frozen=True)
class BreakGlass:
    """A freeze overridden with ``ballast.dev/emergency``: admitted, and recorded with who did it."""

    window: str
    reason: str
    username: str


@dataclass
class Decision:
    """The outcome for one request."""

    allowed: bool
    mode: AdmissionMode | None = None
    findings: list[Finding] = field(default_factory=list)
    break_glass: BreakGlass | None = None
    frozen: FreezeRefusal | None = None
    """The change as a freeze window's refusal, for the scoreboard (set in any mode; it is refused in Enforce)."""

    @property
    def refusal(self) -> str | None:
        """The message a refused request gets: every blocking finding, one sentence each."""
        if self.allowed:
            return None
        return " ".join(f.message for f in self.findings if f.blocking)

    @property
    def warnings(self) -> list[str]:
        """Admission warnings to return (kubectl prints them)."""
        if self.mode is AdmissionMode.AUDIT:
            return []
        return [f.message for f in self.findings if not (self.mode is AdmissionMode.ENFORCE and f.blocking)]


def _spec_without_replicas(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = dict((obj or {}).get("spec") or {})
    spec.pop("replicas", None)
    return spec


def _metadata(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("metadata") or {}


def _annotations(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return _metadata(obj).get("annotations") or {}


def never_refused(request: WorkloadRequest) -> bool:
    """Deletions, status and scale writes, scale-only updates and objects being deleted always pass."""
    if request.operation not in ("CREATE", "UPDATE") or request.subresource:
        return True
    if request.operation == "UPDATE":
        if _metadata(request.new).get("deletionTimestamp"):
            return True
        same_meta = all(_metadata(request.old).get(k) == _metadata(request.new).get(k)
                        for k in ("labels", "annotations"))
        if same_meta and _spec_without_replicas(request.old) == _spec_without_replicas(request.new):
            return True
    return False


def template_changed(request: WorkloadRequest) -> bool:
    """Creation, or an update whose pod template differs: the changes freezes and rollbacks gate."""
    if request.operation == "CREATE":
        return True
    old_template = ((request.old or {}).get("spec") or {}).get("template")
    new_template = ((request.new or {}).get("spec") or {}).get("template")
    return old_template != new_template


def newly_set(request: WorkloadRequest, key: str) -> str | None:
    """The annotation's value if this request sets or changes it, else None.

    An emergency or retry annotation left on a workload from an earlier change must not silently
    wave through the next one: only a fresh value counts.
    """
    value = (_annotations(request.new).get(key) or "").strip()
    if not value or (_annotations(request.old).get(key) or "").strip() == value:
        return None
    return value


MAX_ROLLED_BACK_RECORD = 16 * 1024
"""Characters of the rolled-back annotation read at most: Ballast's own record stays under 1 KiB."""


def rolled_back_revisions(annotations: Mapping[str, str]) -> dict[str, datetime]:
    """The readable entries of the rolled-back annotation: template hash -> when it was rolled back.

    Ballast writes the record, but a broken one (not JSON, not an object, nested too deep, too long, a
    value that is not a time) must not fail every later change of the workload with an internal error:
    what cannot be read is ignored, as if that revision had not been rolled back (its release still has to
    pass the canary analysis). A time without an offset is read as UTC, like every Kubernetes timestamp.
    """
    raw = annotations.get(ROLLED_BACK_ANNOTATION)
    if not raw or len(raw) > MAX_ROLLED_BACK_RECORD:
        return {}
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    entries: dict[str, datetime] = {}
    for revision, text in record.items() if isinstance(record, dict) else ():
        try:
            when = datetime.fromisoformat(text) if isinstance(text, str) else None
        except ValueError:
            continue
        if when is not None:
            entries[revision] = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return entries


def rolled_back_at(stored: Mapping[str, Any] | None, revision: str) -> datetime | None:
    """When ``revision`` was rolled back, from the stored workload's annotation (tolerates garbage)."""
    return rolled_back_revisions(_annotations(stored)).get(revision)


def selecting_ownerships(request: WorkloadRequest, ownerships: Sequence[NamedOwnership]) -> list[NamedOwnership]:
    labels = _metadata(request.new).get("labels") or {}
    return [o for o in ownerships if o.spec.selector.matches(labels)]


def standing_findings(
    kind: str, namespace: str, name: str, labels: Mapping[str, str], annotations: Mapping[str, str],
    context: AdmissionContext,
) -> list[Finding]:
    """Rules about what a workload *is* (not what a change does): ownership annotations and alerts.

    Used for every admission request, and alone by the background audit of existing workloads.
    """
    subject = f"{kind} {namespace}/{name}"
    findings: list[Finding] = []
    owners = [o for o in context.ownerships if o.spec.selector.matches(labels)]
    if len(owners) > 1:
        names = ", ".join(sorted(o.name for o in owners))
        findings.append(context.finding(
            Rule.AMBIGUOUS_OWNERSHIP,
            f"{subject} is selected by several ServiceOwnerships ({names}): change their selectors or the "
            "workload's labels so exactly one selects it",
        ))
    expected_owner = owners[0].spec.owner if len(owners) == 1 else None
    keys = context.policy.admission.required_annotations
    for problem in annotation_problems(annotations, keys, expected_owner=expected_owner):
        rule = Rule.OWNERSHIP if problem.contradicts_ownership else Rule.REQUIRED_ANNOTATIONS
        findings.append(context.finding(rule, problem.sentence(subject)))

    if context.policy.admission.verify_alerts_exist and annotations.get(keys.alerts):
        named = parse_alerts(annotations[keys.alerts])
        if context.known_alerts is None:
            findings.append(context.finding(
                Rule.ALERTS_EXIST,
                f"{subject} names alerts {', '.join(named)} that could not be checked because Prometheus is "
                "unreachable; they are assumed to exist",
                blocking=False,
            ))
        else:
            missing = [a for a in named if a not in context.known_alerts]
            if missing:
                findings.append(context.finding(
                    Rule.ALERTS_EXIST,
                    f"{subject} names alerts that no loaded Prometheus alerting rule defines: "
                    f"{', '.join(missing)}: add the rules to Prometheus or fix the names in {keys.alerts}",
                ))
    return findings


def evaluate(request: WorkloadRequest, context: AdmissionContext) -> Decision:
    """Judge one workload request under the governing policy."""
    mode = context.policy.admission.mode
    if never_refused(request):
        return Decision(allowed=True, mode=mode)
    subject = f"{request.kind} {request.namespace}/{request.name}"
    labels = _metadata(request.new).get("labels") or {}
    findings = standing_findings(request.kind, request.namespace, request.name, labels,
                                 _annotations(request.new), context)
    owners = selecting_ownerships(request, context.ownerships)

    break_glass = frozen = None
    if template_changed(request):
        tier = owners[0].spec.risk_tier if len(owners) == 1 else DEFAULT_TIER
        window = freezing(context.policy.freeze_windows, tier, context.now)
        revision = template_hash(((request.new or {}).get("spec") or {}).get("template"))
        if window is not None:
            reason = newly_set(request, EMERGENCY_ANNOTATION)
            if reason is not None:
                break_glass = BreakGlass(window.window.name, reason, request.username)
            else:
                team = owners[0].spec.owner if len(owners) == 1 else \
                    _annotations(request.new).get(context.policy.admission.required_annotations.owner, "")
                frozen = FreezeRefusal(at=context.now, kind=request.kind, namespace=request.namespace,
                                       name=request.name, revision=revision, team=team, tier=tier,
                                       window=window.window.name, username=request.username)
                why = f" ({window.window.reason})" if window.window.reason else ""
                findings.append(context.finding(
                    Rule.FREEZE_WINDOW,
                    f"{subject} is {tier.value} tier, frozen by window {window.window.name}{why} until "
                    f"{window.ends_at.isoformat()}: wait until then, or for an emergency set annotation "
                    f"{EMERGENCY_ANNOTATION} to a new reason such as the incident id",
                ))
        when = rolled_back_at(request.old, revision)
        block = parse_duration(context.policy.rollback_block_period)
        if when is not None and context.now - when < block and newly_set(request, RETRY_ANNOTATION) is None:
            findings.append(context.finding(
                Rule.ROLLED_BACK_REVISION,
                f"{subject} re-applies pod template {revision}, which Ballast rolled back at {when.isoformat()}: "
                f"fix the change, or set annotation {RETRY_ANNOTATION} to a new value to release it again",
            ))

    refused = mode is AdmissionMode.ENFORCE and any(f.blocking for f in findings)
    return Decision(allowed=not refused, mode=mode, findings=findings, break_glass=break_glass, frozen=frozen)
