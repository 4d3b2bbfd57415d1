"""The release state machine, as one pure function: what the world looks like -> what to do next.

``plan`` reads a :class:`View` (the Release's status, the Deployment, the canary, gates, the clock and,
when asked for, an analysis) and returns a :class:`Plan`: the status to write and the actions to take.
The engine writes the status *before* acting (write-ahead), and every action is idempotent, so an
operator killed at any point resumes by planning again from what the API server holds: nothing is
repeated (verdicts are recorded before they are acted on) and nothing is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from ballast.api.common import parse_duration
from ballast.api.release import (
    FINAL_PHASES,
    MAX_ANALYSES_KEPT,
    WAITING_PHASES,
    AnalysisResult,
    CheckResult,
    ReleasePhase,
    ReleaseStatus,
    TrafficSample,
    Verdict,
)
from ballast.api.releasepolicy import InconclusiveAction, TierSettings
from ballast.api.revisions import template_hash
from ballast.api.routing import RouteRecord, RoutingMode
from ballast.api.vocabulary import PENDING_ANNOTATION
from ballast.release.checks import CheckOutcome
from ballast.release.gates import Block
from ballast.release.routing import (
    BackendRefs,
    RouteChoice,
    Rules,
    at_weight,
    canary_size,
    foreign_edit,
    record,
    restored,
    shown_weights,
    weighted_rules,
)
from ballast.release.verdict import Judgement, Sample

EARLY_CHECK_SECONDS = 1.0
"""How often a running step's canary is checked for a clear failure before the step's verdict is due."""


def canary_replicas(stable_replicas: int, weight: int) -> int:
    """Replicas so that canary / (canary + stable) is as close to ``weight``% as whole pods allow (>= 1)."""
    if weight >= 100:
        return max(1, stable_replicas)
    best = max(1, round(stable_replicas * weight / (100 - weight)))
    candidates = {max(1, best - 1), best, best + 1}
    return min(candidates, key=lambda c: (abs(c / (c + stable_replicas) - weight / 100) if stable_replicas else 0, c))


WEIGHT_TOLERANCE = 5
"""Percentage points a replica split may miss the requested weight by before the release warns."""
MAX_REPLICAS_SUGGESTED = 1000


def reached_weight(stable_replicas: int, canary: int) -> int:
    """The canary's share of the pods, in percent: the traffic a Service splitting by replicas gives it."""
    return round(100 * canary / (canary + stable_replicas)) if canary + stable_replicas else 0


def replicas_for(weight: int, tolerance: int = WEIGHT_TOLERANCE) -> int | None:
    """The fewest stable replicas with which the replica split reaches ``weight`` within ``tolerance``
    points (None beyond MAX_REPLICAS_SUGGESTED)."""
    return next((stable for stable in range(1, MAX_REPLICAS_SUGGESTED + 1)
                 if abs(reached_weight(stable, canary_replicas(stable, weight)) - weight) <= tolerance), None)


def weight_warning(stable_replicas: int, weight: int) -> str:
    """Why the replica split cannot reach ``weight`` within WEIGHT_TOLERANCE points, or ''."""
    canary = canary_replicas(stable_replicas, weight)
    reached = reached_weight(stable_replicas, canary)
    if abs(reached - weight) <= WEIGHT_TOLERANCE:
        return ""
    needed = replicas_for(weight)
    if needed is None:  # 100 %: the canary runs beside as many stable pods as it has
        return (f"The canary gets {reached}% of the traffic, not the {weight}% requested: a replica split never "
                f"gives it all of it; leave {weight}% out of the tier's steps, since promotion rolls out the rest.")
    return (f"The canary gets {reached}% of the traffic, not the {weight}% requested: with {stable_replicas} "
            f"stable replica(s) the replica split ({canary} canary pod(s)) cannot come within "
            f"{WEIGHT_TOLERANCE} points; scale the Deployment to at least {needed} replicas, or change the tier's "
            "steps.")


class ActionKind(StrEnum):
    ENSURE_CANARY = "EnsureCanary"
    DELETE_CANARY = "DeleteCanary"
    PROMOTE = "Promote"
    """Un-pause the Deployment on the new template and drop the pending marker."""
    RESTORE = "Restore"
    """Put the stable template back, un-pause, drop the pending marker, remember the revision as rolled back."""
    ROUTE_TRAFFIC = "RouteTraffic"
    """Make sure the stable and canary Services exist, then write ``rules`` into the HTTPRoute."""
    RESTORE_ROUTE = "RestoreRoute"
    """Take the release out of the HTTPRoute (:func:`ballast.release.routing.restore_rules` of the route as it
    is when acting: a release that is leaving always leaves), then delete Ballast's Services."""


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    replicas: int = 0
    rules: Mapping[int, BackendRefs] = field(default_factory=dict)
    """ROUTE_TRAFFIC: rule index -> the backendRefs to write."""
    resource_version: str = ""
    """ROUTE_TRAFFIC: the route's resourceVersion the rules were computed from (a write is refused past it)."""
    route: RouteRecord | None = None
    """Route actions: the route the release drives, as its status records it."""


@dataclass(frozen=True)
class DeploymentView:
    """What the engine sees of the Deployment."""

    revision: str
    """Hash of its current pod template."""
    paused: bool
    replicas: int
    pending: bool
    """Still carries Ballast's pending-release marker."""
    rolled_out: bool
    """The controller has observed the current generation and every replica is updated and available."""
    stalled: bool = False
    """The controller gave up on the current rollout (``Progressing`` is False: ProgressDeadlineExceeded)."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any] | None) -> DeploymentView | None:
        """The Deployment as the API server holds it; None when it is gone or being deleted.

        Only what the controller has observed counts: a status about an older generation says nothing
        about the current template, neither that it rolled out nor that it stalled.
        """
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        spec, status = body["spec"], body.get("status") or {}
        replicas = spec.get("replicas", 1)
        observed = status.get("observedGeneration", 0) >= body["metadata"].get("generation", 0)
        rolled_out = (
            observed
            and status.get("updatedReplicas", 0) == replicas
            and status.get("availableReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
        )
        stalled = observed and any(
            c.get("type") == "Progressing" and c.get("status") == "False"
            and c.get("reason") == "ProgressDeadlineExceeded"
            for c in status.get("conditions") or [])
        return cls(
            revision=template_hash(spec.get("template")),
            paused=bool(spec.get("paused")),
            replicas=replicas,
            pending=PENDING_ANNOTATION in (body["metadata"].get("annotations") or {}),
            rolled_out=rolled_out,
            stalled=stalled,
        )


@dataclass(frozen=True)
class CanaryView:
    replicas: int
    ready_replicas: int


@dataclass(frozen=True)
class Gates:
    """Gates that make a release wait rather than refuse."""

    approval_required: bool = False
    approved: bool = False
    block: Block | None = None
    """What holds the release back before it may start (see :func:`ballast.release.gates.waiting_block`)."""


@dataclass(frozen=True)
class Requests:
    """What people asked for through the plugin (annotations on the Release)."""

    abort: str | None = None
    promote: bool = False


@dataclass(frozen=True)
class Analysis:
    """One look at the canary's and the baseline's traffic over a window, and what it showed."""

    window_start: datetime
    window_end: datetime
    canary: Sample
    baseline: Sample
    judgement: Judgement
    """The overall verdict: the worst of the error rate's and every check's."""
    checks: tuple[CheckOutcome, ...] = ()
    """The latency and custom checks judged in this look (none in early looks)."""


@dataclass(frozen=True)
class RouteView:
    """What the engine sees of the HTTPRoute: the one recorded in the status, or before the release starts the
    one it would drive."""

    choice: RouteChoice | None = None
    """The route the ServiceOwnership or the tier names (None: replica split)."""
    rules: Rules | None = None
    """The route's ``spec.rules`` now; None when it does not exist."""
    problem: str | None = None
    """Why the chosen route cannot be driven (:func:`ballast.release.routing.route_problem`); None when it can."""
    resource_version: str = ""
    deployment: str = ""
    """The Deployment's name, which Ballast's Services are named after."""


@dataclass(frozen=True)
class View:
    now: datetime
    status: ReleaseStatus
    steps: list[int]
    to_revision: str
    from_revision: str
    tier: TierSettings
    deployment: DeploymentView | None
    canary: CanaryView | None
    gates: Gates = Gates()
    requests: Requests = Requests()
    analysis: Analysis | None = None
    """The latest finished analysis of this release, if any: used when its window is the current one."""
    route: RouteView = RouteView()


@dataclass
class Plan:
    status: ReleaseStatus
    actions: list[Action] = field(default_factory=list)
    analyze_window: tuple[datetime, datetime] | None = None
    """Set when the canary should be looked at: analyse this window and plan again with the result."""
    early: bool = False
    """The window is a check while the step runs: only a failure (at early-check confidence) counts."""
    requeue_after: float | None = None
    """Seconds until the plan should be made again even if nothing changes."""
    transitioned: bool = False


def _to(status: ReleaseStatus, now: datetime, phase: ReleasePhase, reason: str, message: str,
        **changes: object) -> ReleaseStatus:
    updates: dict[str, object] = {"phase": phase, "reason": reason, "message": message, **changes}
    if phase in FINAL_PHASES:
        updates["finished_at"] = now
    if status.started_at is None and phase not in WAITING_PHASES:
        updates["started_at"] = now
    return status.model_copy(update=updates)


def _seconds_until(moment: datetime, now: datetime) -> float:
    return max(0.0, (moment - now).total_seconds())


def plan(view: View) -> Plan:
    """Decide the next status and actions of one release."""
    status, now, deployment = view.status, view.now, view.deployment
    if status.phase in FINAL_PHASES:
        return Plan(status)

    def move(phase: ReleasePhase, reason: str, message: str, actions: list[Action] | None = None,
             **changes: object) -> Plan:
        return Plan(_to(status, now, phase, reason, message, **changes), actions or [], transitioned=True)

    if deployment is None:
        return move(ReleasePhase.FAILED, "DeploymentDeleted", "The Deployment was deleted during the release.",
                    [*_route_out(view), Action(ActionKind.DELETE_CANARY)])
    overtaken = deployment.revision != view.to_revision and not (
        status.phase is ReleasePhase.ROLLING_BACK and deployment.revision == view.from_revision)
    if overtaken:
        return move(ReleasePhase.SUPERSEDED, "Superseded",
                    f"The Deployment's pod template changed again (now {deployment.revision}); a new release "
                    "takes over.", [*_route_out(view), Action(ActionKind.DELETE_CANARY)])
    if status.phase is ReleasePhase.ROLLING_BACK:
        return _rolling_back(view)
    if view.requests.abort is not None:
        return _rollback(view, "Aborted", f"Aborted by request: {view.requests.abort}")
    if status.phase is ReleasePhase.PROMOTING:
        return _promoting(view)
    if status.phase in WAITING_PHASES:
        return _waiting(view)
    return _progressing(view)


def _waiting(view: View) -> Plan:
    status, now, gates = view.status, view.now, view.gates
    if gates.block is not None:
        if (status.phase, status.message) == (ReleasePhase.BLOCKED, gates.block.message):
            return Plan(status, requeue_after=5)
        kinds = sorted({*status.blocked_by, gates.block.kind.value})
        return Plan(_to(status, now, ReleasePhase.BLOCKED, "Blocked", gates.block.message, blocked_by=kinds),
                    requeue_after=5, transitioned=True)
    if gates.approval_required and not gates.approved:
        if status.phase is ReleasePhase.AWAITING_APPROVAL:
            return Plan(status)
        return Plan(_to(status, now, ReleasePhase.AWAITING_APPROVAL, "AwaitingApproval",
                        "The tier requires approval by someone other than the author: "
                        "`kubectl ballast approve` the release."), transitioned=True)
    return _start_step(view, 0)


def _canary_share(view: View, weight: int) -> tuple[int, int, str]:
    """Canary replicas for ``weight``, the weight that reaches, and why it falls short ('' when it does not).

    Through a route the canary gets exactly the weight and is sized to carry it; with the replica split
    its share of the pods is its share of the traffic.
    """
    assert view.deployment is not None
    stable = view.deployment.replicas
    if view.status.route is not None:
        return canary_size(stable, weight), weight, ""
    replicas = canary_replicas(stable, weight)
    return replicas, reached_weight(stable, replicas), weight_warning(stable, weight)


def _start_step(view: View, index: int, reason: str = "StepStarted") -> Plan:
    if index == 0 and view.status.route is None and view.route.choice is not None and \
            view.route.rules is not None and view.route.problem is None:
        # The route as it is before the release, recorded (write-ahead) before anything changes it.
        chosen = record(view.route.choice, view.route.rules, view.route.deployment)
        view = replace(view, status=view.status.model_copy(
            update={"routing": RoutingMode.GATEWAY_ROUTE, "route": chosen}))
    weight = view.steps[index]
    replicas, reached, warning = _canary_share(view, weight)
    route = view.status.route
    share = (f"{weight}% of the traffic through HTTPRoute {route.name} ({replicas} pod(s))" if route is not None
             else f"{weight}% ({replicas} pod(s), {reached}% of the pods)")
    status = _to(view.status, view.now, ReleasePhase.PROGRESSING, "WeightNotReached" if warning else reason,
                 f"Step {index + 1} of {len(view.steps)}: canary at {share}.{' ' + warning if warning else ''}",
                 step=index, weight=weight, reached_weight=reached, weight_warning=warning,
                 step_started_at=view.now, canary_ready_at=None, not_ready_seconds=0.0, not_ready_since=view.now)
    return Plan(status, [Action(ActionKind.ENSURE_CANARY, replicas)], requeue_after=1, transitioned=True)


def _route_out(view: View, always: bool = True) -> list[Action]:
    """The action that takes the release out of its route (none without one, or, unless ``always``, when the
    route no longer sends to Ballast's Services)."""
    route = view.status.route
    if route is None or not (always or not restored(route, view.route.rules)):
        return []
    return [Action(ActionKind.RESTORE_ROUTE, route=route)]


def _rollback(view: View, reason: str, message: str, **changes: object) -> Plan:
    status = _to(view.status, view.now, ReleasePhase.ROLLING_BACK, reason, message, **changes)
    # Traffic leaves the canary first, then its pods go.
    return Plan(status, [*_route_out(view), Action(ActionKind.DELETE_CANARY), Action(ActionKind.RESTORE)],
                requeue_after=1, transitioned=True)


def _route_to(view: View, status: ReleaseStatus, weight: int) -> tuple[ReleaseStatus, list[Action]]:
    """The status and action that give the ready canary exactly ``weight``% through the route, where it does
    not have it yet (nothing with the replica split)."""
    route = status.route
    if route is None or at_weight(route, view.route.rules, weight):
        return status, []
    stable_weight, canary_weight = shown_weights(route, weight)
    route = route.model_copy(update={"stable_weight": stable_weight, "canary_weight": canary_weight})
    return status.model_copy(update={"route": route}), [Action(
        ActionKind.ROUTE_TRAFFIC, rules=weighted_rules(route, weight), resource_version=view.route.resource_version,
        route=route)]


def _progressing(view: View) -> Plan:
    status, now, tier = view.status, view.now, view.tier
    assert view.deployment is not None and status.step is not None and status.weight is not None
    step, weight = status.step, status.weight
    if view.requests.promote and tier.allow_skip:
        return Plan(_to(status, now, ReleasePhase.PROMOTING, "PromotedByRequest",
                        "Remaining steps skipped by request; rolling out natively."),
                    [*_route_out(view), Action(ActionKind.PROMOTE)], requeue_after=1, transitioned=True)
    if status.route is not None and (edit := foreign_edit(status.route, view.route.rules, view.steps)):
        return _rollback(view, "RouteEdited",
                         f"{edit} Ballast never overwrites such an edit: the release rolls back, and only Ballast's "
                         f"own Services are taken out of the route. Release again once HTTPRoute {status.route.name} "
                         "is as intended.")
    desired, reached, warning = _canary_share(view, weight)
    actions = [] if view.canary is not None and view.canary.replicas == desired else \
        [Action(ActionKind.ENSURE_CANARY, desired)]
    # The Deployment was scaled during the step (a status written before the field existed waits for its next step).
    if status.reached_weight not in (None, reached):
        status = status.model_copy(update={"reached_weight": reached, "weight_warning": warning})
    ready = view.canary is not None and view.canary.replicas == desired and view.canary.ready_replicas >= desired
    if not ready:
        # The deadline counts time not ready within the step, so a pod that restarts late in a long,
        # healthy step is not mistaken for a canary that never came up.
        since = status.not_ready_since or now
        spent = status.not_ready_seconds + (now - since).total_seconds()
        allowed = parse_duration(tier.ready_deadline).total_seconds()
        if spent >= allowed:
            return _rollback(view, "CanaryNotReady",
                             f"The canary was not ready for {tier.ready_deadline} at step {step + 1}.")
        if status.not_ready_since is None:
            status = status.model_copy(update={"not_ready_since": now})
        return Plan(status, actions, requeue_after=min(1.0, allowed - spent))
    if status.not_ready_since is not None:
        spent = status.not_ready_seconds + (now - status.not_ready_since).total_seconds()
        status = status.model_copy(update={"not_ready_seconds": spent, "not_ready_since": None})
    # Only a ready canary gets traffic from the route; the step's window starts once it has it.
    status, routing = _route_to(view, status, weight)
    actions += routing
    if status.canary_ready_at is None:
        return Plan(status.model_copy(update={"canary_ready_at": now}), actions,
                    requeue_after=min(EARLY_CHECK_SECONDS, parse_duration(tier.step_duration).total_seconds()))
    due = status.canary_ready_at + parse_duration(tier.step_duration)
    analysis = view.analysis if view.analysis and view.analysis.window_start == status.canary_ready_at else None
    # A window that reaches the step's end is its verdict; a shorter one looks while the step runs, and a
    # canary that is clearly bad is rolled back at once rather than at the end of the step, which is most
    # of what limits the errors users see from a bad change. An early look that errs changes nothing.
    if analysis is not None and (analysis.window_end >= due or analysis.judgement.verdict is Verdict.FAIL):
        return _judged(replace(view, status=status), analysis)
    early = now < due
    return Plan(status, actions, analyze_window=(status.canary_ready_at, now), early=early,
                requeue_after=min(EARLY_CHECK_SECONDS, _seconds_until(due, now)) if early else EARLY_CHECK_SECONDS)


def _tally(status: ReleaseStatus) -> dict[str, int]:
    """Verdict counts over the whole release (older records carry none: count what they list)."""
    if status.analysis_counts:
        return dict(status.analysis_counts)
    counts: dict[str, int] = {}
    for a in status.analyses:
        counts[a.verdict.value] = counts.get(a.verdict.value, 0) + 1
    return counts


def _unknown_streak(analyses: list[AnalysisResult], verdict: Verdict) -> int:
    """How many of the latest analyses since the last Pass or Fail reached ``verdict``."""
    count = 0
    for a in reversed(analyses):
        if a.verdict in (Verdict.PASS, Verdict.FAIL):
            break
        count += a.verdict is verdict
    return count


def _judged(view: View, analysis: Analysis) -> Plan:
    status, now, tier = view.status, view.now, view.tier
    assert status.step is not None and status.weight is not None
    judgement = analysis.judgement
    result = AnalysisResult(
        step=status.step, weight=status.weight, window_start=analysis.window_start,
        window_end=analysis.window_end, canary=_traffic(analysis.canary), baseline=_traffic(analysis.baseline),
        verdict=judgement.verdict, message=judgement.message, checks=[_check_result(c) for c in analysis.checks],
    )
    counts = _tally(status)
    counts[judgement.verdict.value] = counts.get(judgement.verdict.value, 0) + 1
    analyses = [*status.analyses, result][-MAX_ANALYSES_KEPT:]
    recorded = replace_status(status, analyses=analyses, analysis_counts=counts, canary_ready_at=analysis.window_end)
    step_text = f"step {status.step + 1} ({status.weight}%)"
    if counts.get(Verdict.FAIL.value, 0) >= tier.failure_limit:
        return _rollback(replace(view, status=recorded), "AnalysisFailed",
                         f"Analysis failed at {step_text}: {judgement.message}")
    for verdict, limit, action, reason, what in (
        (Verdict.ERROR, tier.error_limit, tier.on_error, "AnalysisError",
         "analyses in a row could not be evaluated (the metrics provider or a check)"),
        (Verdict.INCONCLUSIVE, tier.inconclusive_limit, tier.on_inconclusive, "AnalysisInconclusive",
         "inconclusive analyses in a row"),
    ):
        streak = _unknown_streak(analyses, verdict)
        if judgement.verdict is not verdict or streak < limit:
            continue
        if action is InconclusiveAction.ROLLBACK:
            return _rollback(replace(view, status=recorded), reason,
                             f"{streak} {what} at {step_text}: {judgement.message}")
        held = _to(recorded, now, ReleasePhase.PROGRESSING, "Held",
                   f"{streak} {what} at {step_text}; holding (never promoting) until an analysis passes or "
                   f"someone promotes or aborts: {judgement.message}")
        return Plan(held, requeue_after=EARLY_CHECK_SECONDS, transitioned=True)
    if judgement.verdict is Verdict.PASS:
        if status.step + 1 >= len(view.steps):
            return Plan(_to(recorded, now, ReleasePhase.PROMOTING, "AnalysisPassed",
                            f"Every step passed; rolling out natively. Last: {judgement.message}"),
                        [*_route_out(view), Action(ActionKind.PROMOTE)], requeue_after=1, transitioned=True)
        return _start_step(replace(view, status=recorded), status.step + 1, reason="StepPassed")
    # Inconclusive, in error or failed below the limit: analyse a fresh window at the same step.
    return Plan(recorded, requeue_after=EARLY_CHECK_SECONDS)


def replace_status(status: ReleaseStatus, **changes: object) -> ReleaseStatus:
    return status.model_copy(update=changes)


def _traffic(sample: Sample) -> TrafficSample:
    """The sample as recorded: a figure that is not a finite number is left out (JSON cannot carry it; the
    verdict's message says what it was)."""
    rate = sample.error_rate if _finite(sample.requests) and _finite(sample.errors) is not None else None
    return TrafficSample(requests=_finite(sample.requests), errors=_finite(sample.errors), error_rate=rate)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _check_result(outcome: CheckOutcome) -> CheckResult:
    """A check as recorded; figures that are not finite numbers are left out, as in :func:`_traffic`."""
    return CheckResult(name=outcome.name, source=outcome.source, canary=_finite(outcome.canary),
                       baseline=_finite(outcome.baseline), samples=_finite(outcome.samples),
                       verdict=outcome.judgement.verdict, message=outcome.judgement.message)


def _promoting(view: View) -> Plan:
    status, deployment = view.status, view.deployment
    assert deployment is not None
    if deployment.stalled:
        return _rollback(view, "RolloutStalled",
                         f"The native rollout of revision {view.to_revision} made no progress within the "
                         "Deployment's progressDeadlineSeconds.")
    if route_actions := _route_out(view, always=False):
        return Plan(status, route_actions, requeue_after=1)  # traffic back on the stable Service before rolling
    if deployment.paused or deployment.pending:
        return Plan(status, [Action(ActionKind.PROMOTE)], requeue_after=1)
    if not deployment.rolled_out:
        return Plan(status, requeue_after=1)
    return Plan(_to(status, view.now, ReleasePhase.PROMOTED, "Promoted",
                    f"Revision {view.to_revision} is rolled out on every replica.", weight=100, reached_weight=100,
                    weight_warning=""),
                [Action(ActionKind.DELETE_CANARY)], transitioned=True)


def _rolling_back(view: View) -> Plan:
    status, deployment = view.status, view.deployment
    assert deployment is not None
    actions = [*_route_out(view, always=False), *([] if view.canary is None else [Action(ActionKind.DELETE_CANARY)])]
    if deployment.revision == view.to_revision or deployment.paused or deployment.pending:
        return Plan(status, [*actions, Action(ActionKind.RESTORE)], requeue_after=1)
    if actions:
        return Plan(status, actions, requeue_after=1)
    # The reason stays the rollback's cause (AnalysisFailed, CanaryNotReady, Aborted, ...).
    return Plan(_to(status, view.now, ReleasePhase.ROLLED_BACK, status.reason,
                    f"Restored revision {view.from_revision}. {status.message}", weight=0, reached_weight=0,
                    weight_warning=""), transitioned=True)
