"""Admission rules for workloads, as one pure function over plain data.

The webhook, the background audit and ``kubectl ballast check`` all call :func:`evaluate`, so a
workload is judged identically online, in the audit and in a service team's CI pipeline. Inputs are
snapshots (the request, the governing policy, the namespace's ServiceOwnerships, the known alert
rules, the clock); nothing here performs I/O.

Revisions the release engine rolled back are read from the stored (old) object's record (see
:mod:`ballast.api.revisions`), so a user cannot drop it in the same request that re-applies the revision
(and the mutating webhook keeps people from dropping it in an earlier one).

Releases are the operator's record: :func:`judge_release_request` refuses people creating them or
rewriting what they say, and :func:`ballast.api.release.created_by_operator` is how the release engine
tells its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ballast.api.common import TIER_ORDER, RiskTier, parse_duration, stricter
from ballast.api.releasepolicy import AdmissionMode, FreezeRefusal, ReleasePolicySpec
from ballast.api.revisions import rolled_back_revisions, template_hash
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.api.vocabulary import (
    APPROVE_ANNOTATION,
    CANARY_TRACK,
    DEFAULT_TIER,
    EMERGENCY_ANNOTATION,
    PROMOTE_ANNOTATION,
    RETRY_ANNOTATION,
    TRACK_LABEL,
)
from ballast.policy.freeze import freezing
from ballast.policy.ownership import NamedOwnership, responsibility, workload_tier
from ballast.policy.workloads import annotation_problems, parse_alerts


class Rule(StrEnum):
    """Names of the rules, as they appear in messages, metrics and ``kubectl ballast check`` output."""

    REQUIRED_ANNOTATIONS = "required-annotations"
    OWNERSHIP = "ownership"
    AMBIGUOUS_OWNERSHIP = "ambiguous-ownership"
    ALERTS_EXIST = "alerts-exist"
    FREEZE_WINDOW = "freeze-window"
    ROLLED_BACK_REVISION = "rolled-back-revision"
    CANARY_TRACK = "canary-track"
    TIER_DOWNGRADE = "tier-downgrade"


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
    """A change that set ``ballast.dev/emergency``: admitted past a freeze (``window``, when one is open)
    and, on its Release, past a spent error budget; always recorded with who did it."""

    window: str | None
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


def newly_set(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, key: str) -> str | None:
    """The annotation's value if the request taking ``old`` to ``new`` sets or changes it, else None.

    An emergency or retry annotation left on a workload from an earlier change must not silently
    wave through the next one: only a fresh value counts.
    """
    value = (_annotations(new).get(key) or "").strip()
    if not value or (_annotations(old).get(key) or "").strip() == value:
        return None
    return value


def rolled_back_at(stored: Mapping[str, Any] | None, revision: str) -> datetime | None:
    """When ``revision`` was rolled back, from the stored workload's annotation (tolerates garbage)."""
    return rolled_back_revisions(_annotations(stored)).get(revision)


def standing_findings(
    kind: str, namespace: str, name: str, labels: Mapping[str, str], annotations: Mapping[str, str],
    context: AdmissionContext,
) -> list[Finding]:
    """Rules about what a workload *is* (not what a change does): ownership annotations and alerts.

    Used for every admission request, and alone by the background audit of existing workloads.
    """
    subject = f"{kind} {namespace}/{name}"
    findings: list[Finding] = []
    if labels.get(TRACK_LABEL) == CANARY_TRACK:
        findings.append(context.finding(
            Rule.CANARY_TRACK,
            f"{subject} carries label {TRACK_LABEL}={CANARY_TRACK}, which marks the canaries Ballast's releases run "
            "and exempts them from its checks: remove the label (Ballast labels its own canaries)",
        ))
    keys = context.policy.admission.required_annotations
    responsible = responsibility(labels, annotations, context.ownerships, keys)
    if len(responsible.selected_by) > 1:
        names = ", ".join(sorted(o.name for o in responsible.selected_by))
        findings.append(context.finding(
            Rule.AMBIGUOUS_OWNERSHIP,
            f"{subject} is selected by several ServiceOwnerships ({names}): change their selectors or the "
            "workload's labels so exactly one selects it",
        ))
    expected_owner = responsible.ownership.spec.owner if responsible.ownership else None
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
    """Judge one workload request under the governing policy.

    A change is judged under the stricter of the workload's tier before and after it, so dropping the
    label a ServiceOwnership selects never takes a change out of its tier's freeze.
    """
    mode = context.policy.admission.mode
    if never_refused(request):
        return Decision(allowed=True, mode=mode)
    subject = f"{request.kind} {request.namespace}/{request.name}"
    labels = _metadata(request.new).get("labels") or {}
    responsible = responsibility(labels, _annotations(request.new), context.ownerships,
                                 context.policy.admission.required_annotations)
    findings = standing_findings(request.kind, request.namespace, request.name, labels,
                                 _annotations(request.new), context)
    tiers = [responsible.tier]
    downgrade = None
    if request.operation == "UPDATE":
        old_labels = _metadata(request.old).get("labels") or {}
        downgrade = _downgrade(subject, old_labels, labels, context)
        if downgrade is not None:
            findings.append(downgrade)
        tiers.append(workload_tier(old_labels, context.ownerships))

    break_glass = frozen = None
    revision = template_hash(((request.new or {}).get("spec") or {}).get("template"))
    if template_changed(request) or downgrade is not None:
        break_glass, frozen, finding = _freeze(subject, request.kind, request.namespace, request.name, revision,
                                               responsible.team, tiers, request.old, request.new, request.username,
                                               context)
        findings += [finding] if finding else []
    if template_changed(request):
        when = rolled_back_at(request.old, revision)
        block = parse_duration(context.policy.rollback_block_period)
        if when is not None and context.now - when < block and \
                newly_set(request.old, request.new, RETRY_ANNOTATION) is None:
            findings.append(context.finding(
                Rule.ROLLED_BACK_REVISION,
                f"{subject} re-applies pod template {revision}, which Ballast rolled back at {when.isoformat()}: "
                f"fix the change, or set annotation {RETRY_ANNOTATION} to a new value to release it again",
            ))
    return _decide(mode, findings, break_glass, frozen)


def _decide(mode: AdmissionMode, findings: list[Finding], break_glass: BreakGlass | None,
            frozen: FreezeRefusal | None) -> Decision:
    refused = mode is AdmissionMode.ENFORCE and any(f.blocking for f in findings)
    return Decision(allowed=not refused, mode=mode, findings=findings, break_glass=break_glass, frozen=frozen)


def _freeze(subject: str, kind: str, namespace: str, name: str, revision: str, team: str, tiers: Sequence[RiskTier],
            old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, username: str, context: AdmissionContext,
            ) -> tuple[BreakGlass | None, FreezeRefusal | None, Finding | None]:
    """A gated change under the freeze windows of its tiers (before and after it, strictest first):
    break-glass, or a refusal recorded for the scoreboard.

    Break-glass counts only when this request sets or changes ``ballast.dev/emergency``, and is recorded
    whether or not a window is open (the reason also lets the change's release past a spent error budget).
    """
    frozen_tiers = [(t, w) for t in sorted(set(tiers), key=TIER_ORDER.index, reverse=True)
                    if (w := freezing(context.policy.freeze_windows, t, context.now)) is not None]
    reason = newly_set(old, new, EMERGENCY_ANNOTATION)
    if reason is not None:
        return BreakGlass(frozen_tiers[0][1].window.name if frozen_tiers else None, reason, username), None, None
    if not frozen_tiers:
        return None, None, None
    tier, window = frozen_tiers[0]
    frozen = FreezeRefusal(at=context.now, kind=kind, namespace=namespace, name=name, revision=revision,
                           team=team, tier=tier, window=window.window.name, username=username)
    why = f" ({window.window.reason})" if window.window.reason else ""
    return None, frozen, context.finding(
        Rule.FREEZE_WINDOW,
        f"{subject} is {tier.value} tier, frozen by window {window.window.name}{why} until "
        f"{window.ends_at.isoformat()}: wait until then, or for an emergency set annotation "
        f"{EMERGENCY_ANNOTATION} to a new reason such as the incident id",
    )


def _downgrade(subject: str, old_labels: Mapping[str, str], new_labels: Mapping[str, str],
               context: AdmissionContext) -> Finding | None:
    """A label change that takes a workload out of a ServiceOwnership, or into a laxer tier."""
    dropped = sorted(o.name for o in context.ownerships
                     if o.spec.selector.matches(old_labels) and not o.spec.selector.matches(new_labels))
    old_tier, new_tier = workload_tier(old_labels, context.ownerships), workload_tier(new_labels, context.ownerships)
    if not dropped and stricter(old_tier, new_tier) == new_tier:
        return None
    what = f"leaves ServiceOwnership {', '.join(dropped)}" if dropped else "changes labels"
    return context.finding(
        Rule.TIER_DOWNGRADE,
        f"{subject} {what} and goes from {old_tier.value} to {new_tier.value} tier; this change is judged as "
        f"{stricter(old_tier, new_tier).value}: keep the labels the ServiceOwnership selects, or change the "
        "ServiceOwnership itself",
        blocking=False,
    )


def judge_ownership_change(namespace: str, name: str, old: ServiceOwnershipSpec, new: ServiceOwnershipSpec,
                           old_body: Mapping[str, Any] | None, new_body: Mapping[str, Any] | None,
                           workloads: Sequence[tuple[str, str, Mapping[str, str]]], username: str,
                           context: AdmissionContext) -> Decision:
    """An update of a ServiceOwnership that lowers its tier or stops selecting workloads it governed.

    Both are findings (warnings outside a freeze); during a freeze of the old tier they need break-glass
    (``ballast.dev/emergency`` newly set on the ServiceOwnership) like any other change. ``workloads`` are
    the namespace's (kind, name, labels).
    """
    subject = f"ServiceOwnership {namespace}/{name}"
    dropped = [f"{kind} {workload}" for kind, workload, labels in sorted(workloads)
               if old.selector.matches(labels) and not new.selector.matches(labels)]
    lowered = stricter(old.risk_tier, new.risk_tier) != new.risk_tier
    if not dropped and not lowered:
        return Decision(allowed=True, mode=context.policy.admission.mode)
    parts = [f"lowers riskTier from {old.risk_tier.value} to {new.risk_tier.value}"] if lowered else []
    parts += [f"stops selecting {', '.join(dropped)}"] if dropped else []
    findings = [context.finding(
        Rule.TIER_DOWNGRADE,
        f"{subject} {' and '.join(parts)}, taking its workloads out of the {old.risk_tier.value} tier's "
        "guardrails: make sure this is meant (platform teams review tier changes)",
        blocking=False,
    )]
    revision = template_hash((new_body or {}).get("spec"))
    break_glass, frozen, finding = _freeze(subject, "ServiceOwnership", namespace, name, revision, new.owner,
                                           [old.risk_tier, new.risk_tier], old_body, new_body, username, context)
    findings += [finding] if finding else []
    return _decide(context.policy.admission.mode, findings, break_glass, frozen)


@dataclass(frozen=True)
class ReleaseRequest:
    """An admission request for a Release, by someone other than the operator."""

    operation: str
    namespace: str
    name: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    username: str
    subresource: str | None = None


def judge_release_request(request: ReleaseRequest, policy: ReleasePolicySpec) -> str | None:
    """Why a person's request on a Release is refused, or None.

    Only the operator creates Releases and writes what they say (spec, labels, owner references, status);
    people steer them with annotations. The author and the tier come from the stored (old) Release,
    so nobody approves their own change or skips a tier's steps by rewriting the record first.
    """
    subject = f"Release {request.namespace}/{request.name}"
    if request.subresource == "status":
        return (f"{subject}'s status is Ballast's record of what it decided and can only be written by its "
                f"operator, not by {request.username}: steer the release with `kubectl ballast approve`, `promote` "
                "or `abort`.")
    if request.subresource:
        return None
    if request.operation == "CREATE":
        return (f"{subject} cannot be created by {request.username}: Releases are recorded by Ballast's operator, "
                "one per change of a governed Deployment's pod template: change the Deployment instead.")
    if request.operation != "UPDATE":
        return None
    old, new = _metadata(request.old), _metadata(request.new)
    changed = [what for what, a, b in (
        ("spec", (request.old or {}).get("spec"), (request.new or {}).get("spec")),
        ("labels", old.get("labels"), new.get("labels")),
        ("owner references", old.get("ownerReferences"), new.get("ownerReferences")),
    ) if (a or None) != (b or None)]
    if changed:
        return (f"{subject}'s {' and '.join(changed)} can only be written by Ballast's operator, not by "
                f"{request.username}: steer the release with `kubectl ballast approve`, `promote` or `abort`.")
    spec = (request.old or {}).get("spec") or {}
    added = {key for key in (APPROVE_ANNOTATION, PROMOTE_ANNOTATION)
             if key in _annotations(request.new) and key not in _annotations(request.old)}
    if APPROVE_ANNOTATION in added and (spec.get("changedBy") or {}).get("username") == request.username:
        return (f"{subject} was changed by {request.username}, who cannot also approve it (four eyes): ask "
                "someone else to run `kubectl ballast approve`.")
    tier = RiskTier(spec.get("tier") or DEFAULT_TIER)
    if PROMOTE_ANNOTATION in added and not policy.tiers.for_tier(tier).allow_skip:
        return (f"{subject} is {tier.value} tier, whose policy does not allow skipping steps: let the analysis "
                "finish, or `kubectl ballast abort` it.")
    return None
