"""``Release``: the operator's record of one attempted change to a Deployment's pod template.

Like an Argo Rollouts AnalysisRun, the status is the complete, replayable record of what was decided
and why: every analysis with its numbers, who changed and who approved, and every phase's timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import Field

from ballast.api.common import ApiModel, ApiResource, Condition, RiskTier
from ballast.api.routing import RouteRecord, RoutingMode
from ballast.api.vocabulary import MANAGED_BY, MANAGED_BY_LABEL, ChangeType


class ReleasePhase(StrEnum):
    """Where a release stands. The last four are final."""

    PENDING = "Pending"
    BLOCKED = "Blocked"
    AWAITING_APPROVAL = "AwaitingApproval"
    PROGRESSING = "Progressing"
    PROMOTING = "Promoting"
    ROLLING_BACK = "RollingBack"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    SUPERSEDED = "Superseded"
    FAILED = "Failed"


FINAL_PHASES = frozenset({ReleasePhase.PROMOTED, ReleasePhase.ROLLED_BACK, ReleasePhase.SUPERSEDED,
                          ReleasePhase.FAILED})
ACTIVE_PHASES = frozenset({ReleasePhase.PROGRESSING, ReleasePhase.PROMOTING, ReleasePhase.ROLLING_BACK})
"""Phases that hold a concurrency slot."""
WAITING_PHASES = frozenset({ReleasePhase.PENDING, ReleasePhase.BLOCKED, ReleasePhase.AWAITING_APPROVAL})
QUEUED_PHASES = frozenset({ReleasePhase.PENDING, ReleasePhase.BLOCKED})
"""Waiting phases that queue for a slot (a release awaiting approval does not)."""


class Verdict(StrEnum):
    """The outcome of one analysis."""

    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    """Too little traffic, or no data: the canary has not been judged yet."""
    ERROR = "Error"
    """The metrics provider could not be asked, or answered something unusable (a matrix, several series,
    NaN, a negative count): nothing is known about the canary, and the tier's ``onError`` applies."""


class UserInfo(ApiModel):
    """The identity the API server reported for a request (from the admission review)."""

    username: str
    """User name, e.g. ``alice@example.com`` or ``system:serviceaccount:ci:deployer``."""
    uid: str | None = None
    """User id, when the authenticator provides one."""
    groups: list[str] = Field(default_factory=list)
    """Groups the user belongs to."""


class ReleaseSpec(ApiModel):
    """What change this release carries and under which rules. Written once, by the operator."""

    deployment: str = Field(min_length=1)
    """The Deployment being changed (same namespace)."""
    service: str = ""
    """The ServiceOwnership that selects the Deployment, if any."""
    owner: str = ""
    """The owning team (from the ServiceOwnership, else the Deployment's owner annotation)."""
    tier: RiskTier = RiskTier.MEDIUM
    """Risk tier the release runs under."""
    policy: str = ""
    """The ReleasePolicy that governs the namespace."""
    from_revision: str = ""
    """Hash of the pod template before the change."""
    to_revision: str = Field(min_length=1)
    """Hash of the pod template the change introduces."""
    from_images: list[str] = Field(default_factory=list)
    """Container images before the change."""
    to_images: list[str] = Field(default_factory=list)
    """Container images after the change."""
    changed_by: UserInfo | None = None
    """Who applied the change."""
    change_type: ChangeType = ChangeType.FEATURE
    """Kind of change, from ``ballast.dev/change-type``."""
    emergency: str | None = None
    """Break-glass reason from ``ballast.dev/emergency``, when the change used it."""
    steps: list[int] = Field(default_factory=list)
    """Traffic percentages the canary moves through."""


MAX_ANALYSES_KEPT = 30
"""Analyses a Release lists: a release held for a week keeps its status far below etcd's object limit."""


class TrafficSample(ApiModel):
    """Requests and errors of one side of the comparison over the analysis window."""

    requests: float | None = None
    """Requests served; absent when Prometheus returned no data."""
    errors: float | None = None
    """Requests that failed."""
    error_rate: float | None = None
    """errors / requests."""


class CheckResult(ApiModel):
    """One check of one analysis (the latency, or a custom check): the values and its own verdict."""

    name: str
    """``latency`` or the custom check's name."""
    source: Literal["policy", "service"] = "policy"
    """Where the check is declared: the ReleasePolicy's tier or the ServiceOwnership."""
    canary: float | None = None
    """The canary's value (latency in seconds); absent when there was none or it was not a finite number."""
    baseline: float | None = None
    """The stable pods' value, where the check compares with the baseline."""
    samples: float | None = None
    """Requests the canary's latency was estimated from (latency only)."""
    verdict: Verdict
    """Pass, Fail, Inconclusive or Error."""
    message: str = ""
    """Why."""


class AnalysisResult(ApiModel):
    """One analysis of one step: the numbers and the verdict drawn from them."""

    step: int = Field(ge=0)
    """Index of the step (0-based)."""
    weight: int = Field(ge=0, le=100)
    """Traffic percentage of the step."""
    window_start: datetime
    """Start of the query window."""
    window_end: datetime
    """End of the query window."""
    canary: TrafficSample = Field(default_factory=TrafficSample)
    """The canary's traffic."""
    baseline: TrafficSample = Field(default_factory=TrafficSample)
    """The stable pods' traffic over the same window."""
    verdict: Verdict
    """Pass, Fail, Inconclusive or Error: the worst of the error rate's verdict and every check's."""
    message: str = ""
    """Why the verdict was reached."""
    checks: list[CheckResult] = Field(default_factory=list)
    """The latency and custom checks judged in this analysis (at a step's verdict, not in early looks)."""


class ReleaseStatus(ApiModel):
    """Progress and outcome, written by the operator."""

    observed_generation: int | None = None
    """The ``metadata.generation`` this status was computed from."""
    phase: ReleasePhase = ReleasePhase.PENDING
    """Pending, Blocked, AwaitingApproval, Progressing, Promoting, Promoted, RollingBack, RolledBack,
    Superseded or Failed."""
    step: int | None = Field(default=None, ge=0)
    """Index of the current step."""
    weight: int | None = Field(default=None, ge=0, le=100)
    """Traffic percentage the current step asks for."""
    reached_weight: int | None = Field(default=None, ge=0, le=100)
    """The canary's share of the pods in percent: the traffic it gets, as the Service splits by replicas."""
    weight_warning: str = ""
    """Set while the replica split cannot reach the step's weight within 5 points: by how much, and the fix."""
    routing: RoutingMode = RoutingMode.REPLICA_SPLIT
    """How the canary gets its share: ``ReplicaSplit`` (its share of the pods) or ``GatewayRoute`` (exact
    weights set on an HTTPRoute)."""
    route: RouteRecord | None = None
    """With ``GatewayRoute``: the HTTPRoute driven, its backendRefs before the release, and the weights set."""
    analyses: list[AnalysisResult] = Field(default_factory=list)
    """The most recent analyses, in order (at most ``MAX_ANALYSES_KEPT``; ``analysisCounts`` counts them all)."""
    analysis_counts: dict[str, int] = Field(default_factory=dict)
    """Verdict -> how many analyses reached it over the whole release, including those no longer listed."""
    reason: str = ""
    """CamelCase reason for the current phase, e.g. ``AnalysisFailed`` or ``CanaryNotReady``."""
    message: str = ""
    """A sentence explaining the current phase."""
    approved_by: UserInfo | None = None
    """Who approved the release, where its tier requires approval."""
    blocked_by: list[Literal["concurrency", "error-budget", "canary-name", "gateway-route"]] = Field(
        default_factory=list)
    """Every gate that held the release back at some point (for the scoreboard)."""
    conditions: list[Condition] = Field(default_factory=list)
    """``Progressing`` (traffic is moving), ``Degraded`` (the change is being or was undone, or failed) and,
    once the release is over, ``Succeeded``; derived from the phase, with its reason and message."""
    step_started_at: datetime | None = None
    """When the current step began (its canary was asked for)."""
    canary_ready_at: datetime | None = None
    """When the canary became ready at the current step, or when the current analysis window began."""
    not_ready_seconds: float = Field(default=0.0, ge=0)
    """How long the canary has not been ready during the current step, before ``notReadySince``."""
    not_ready_since: datetime | None = None
    """Since when the canary has not been ready, while it is not; None while it is ready."""
    started_at: datetime | None = None
    """When the release left Pending."""
    finished_at: datetime | None = None
    """When it reached a final phase."""


class Release(ApiResource):
    """A record of one attempted change to a Deployment's pod template and how it was released."""

    kind: ClassVar[str] = "Release"
    plural: ClassVar[str] = "releases"
    singular: ClassVar[str] = "release"
    short_names: ClassVar[list[str]] = ["rel"]
    scope: ClassVar[str] = "Namespaced"
    printer_columns: ClassVar[list[dict[str, Any]]] = [
        {"name": "Service", "type": "string", "jsonPath": ".spec.service"},
        {"name": "Tier", "type": "string", "jsonPath": ".spec.tier"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Weight", "type": "integer", "jsonPath": ".status.weight"},
        {"name": "Reached", "type": "integer", "jsonPath": ".status.reachedWeight"},
        {"name": "Routing", "type": "string", "jsonPath": ".status.routing", "priority": 1},
        {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]

    spec: ReleaseSpec
    """The change and the rules it runs under."""
    status: ReleaseStatus | None = None
    """Progress and outcome."""


def created_by_operator(release: Mapping[str, Any], deployment: Mapping[str, Any] | None) -> bool:
    """Whether the release engine may act on ``release``: the operator created it (its label, which the
    webhook refuses from anyone else), and it is owned by ``deployment`` (by UID), when that is known."""
    metadata = release.get("metadata") or {}
    if (metadata.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY:
        return False
    if deployment is None:
        return True
    uid = (deployment.get("metadata") or {}).get("uid")
    return any(ref.get("kind") == "Deployment" and ref.get("uid") == uid
               for ref in metadata.get("ownerReferences") or [])
