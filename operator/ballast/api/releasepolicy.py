"""``ReleasePolicy``: the cluster-scoped rules a platform team sets for the namespaces it governs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, model_validator

from ballast.api.checks import LATENCY_VARIABLES, QUERY_VARIABLES, Checks, LatencyLimits, template_problem
from ballast.api.common import (
    AnnotationKey,
    ApiModel,
    ApiResource,
    Condition,
    Duration,
    LabelSelector,
    Ratio,
    RiskTier,
)
from ballast.api.notifications import NotificationReceiver
from ballast.api.release import MAX_ANALYSES_KEPT
from ballast.api.routing import GatewayRouteTemplate
from ballast.api.vocabulary import ALERTS_ANNOTATION, OWNER_ANNOTATION, RUNBOOK_ANNOTATION, ChangeType


class AdmissionMode(StrEnum):
    """What the admission webhook does with a workload that breaks a rule."""

    ENFORCE = "Enforce"
    """Refuse it, with a message that names the rule and the fix."""
    WARN = "Warn"
    """Admit it and return admission warnings (kubectl prints them)."""
    AUDIT = "Audit"
    """Admit it silently; count it in metrics and the policy's audit status."""


class RequiredAnnotations(ApiModel):
    """The annotation keys that carry a workload's exit criteria; override them to fit existing conventions."""

    owner: AnnotationKey = OWNER_ANNOTATION
    """Key of the owning team's name."""
    alerts: AnnotationKey = ALERTS_ANNOTATION
    """Key of the comma-separated list of alert rule names that page for the workload."""
    runbook: AnnotationKey = RUNBOOK_ANNOTATION
    """Key of the http(s) URL of the workload's runbook."""


class AdmissionSettings(ApiModel):
    """How workloads in governed namespaces are admitted."""

    mode: AdmissionMode = AdmissionMode.ENFORCE
    """Enforce refuses, Warn admits with warnings, Audit admits and records. Defaults to Enforce."""
    required_annotations: RequiredAnnotations = Field(default_factory=RequiredAnnotations)
    """Annotation keys every governed workload must carry."""
    exempt_namespaces: list[str] = Field(default_factory=list)
    """Namespaces never checked even when the selector matches them (system namespaces always are)."""
    verify_alerts_exist: bool = False
    """Require every alert a workload names to exist as an alerting rule loaded in Prometheus."""


def _strictly_increasing(steps: list[int]) -> list[int]:
    if any(b <= a for a, b in pairwise(steps)):
        raise ValueError(f"steps {steps} must be strictly increasing traffic percentages, such as [5, 25, 50]")
    return steps


CanarySteps = Annotated[
    list[Annotated[int, Field(ge=1, le=100)]],
    Field(min_length=1, max_length=20, json_schema_extra={"x-kubernetes-list-type": "set"}),
    AfterValidator(_strictly_increasing),
]


class InconclusiveAction(StrEnum):
    """What happens when analysis stays inconclusive, or in error, past its limit. It never promotes."""

    HOLD = "Hold"
    """Keep the canary at its current weight and wait for a human to promote or abort."""
    ROLLBACK = "Rollback"
    """Roll the change back."""


class TierSettings(ApiModel):
    """Canary settings for one risk tier. Fields left out take that tier's default (see the docs)."""

    steps: CanarySteps = Field(default_factory=lambda: [10, 50])
    """Traffic percentages the canary moves through, strictly increasing within 1..100."""
    step_duration: Duration = "2m"
    """How long each step runs before its analysis."""
    max_error_rate: Ratio = 0.05
    """Ceiling on the canary's error ratio; above it the step fails outright."""
    max_increase: Ratio = 0.02
    """How far the canary's error ratio may exceed the baseline's before the step fails."""
    min_requests: int = Field(default=50, ge=0)
    """Fewer canary requests than this in a step make its verdict Inconclusive."""
    failure_limit: int = Field(default=1, ge=1)
    """Failed analyses that trigger a rollback."""
    inconclusive_limit: int = Field(default=3, ge=1, le=MAX_ANALYSES_KEPT)
    """Consecutive inconclusive analyses before ``onInconclusive`` applies."""
    on_inconclusive: InconclusiveAction = InconclusiveAction.HOLD
    """What to do once the inconclusive limit is reached; a release never promotes on inconclusive data."""
    error_limit: int = Field(default=3, ge=1, le=MAX_ANALYSES_KEPT)
    """Consecutive analyses in Error (the metrics provider could not be asked) before ``onError`` applies."""
    on_error: InconclusiveAction = InconclusiveAction.ROLLBACK
    """What to do once the error limit is reached; a release never promotes without a Pass at every step."""
    approval_required: bool = False
    """Whether a person other than the author must approve before the canary starts."""
    max_concurrent: int = Field(default=3, ge=1)
    """Releases of this tier progressing at once per namespace and per owner team; the rest wait Blocked."""
    ready_deadline: Duration = "5m"
    """How long the canary may take to become ready before the release rolls back with CanaryNotReady."""
    allow_skip: bool = True
    """Whether ``kubectl ballast promote`` may skip the remaining steps."""
    latency: LatencyLimits | None = None
    """Latency limits (a quantile of the policy's latency histogram, canary against baseline); judged only
    when set."""
    checks: Checks = Field(default_factory=list)
    """Custom checks: named PromQL queries with a ceiling, a floor or a comparison with the baseline. The
    ServiceOwnership's own checks apply as well."""
    gateway_route: GatewayRouteTemplate | None = None
    """The HTTPRoute of every service of the tier whose ServiceOwnership names none (names templated with
    ``$service`` and ``$deployment``); where that route does not exist, the replica split applies."""
    require_gateway_route: bool = False
    """Hold (``Blocked``) a release of this tier until its service has an HTTPRoute to shift exact weights
    through: a replica split is too coarse for the tier's first step."""


TIER_DEFAULTS: dict[RiskTier, TierSettings] = {
    RiskTier.CRITICAL: TierSettings(
        steps=[1, 5, 25, 50], step_duration="5m", max_error_rate=0.01, max_increase=0.005,
        min_requests=200, failure_limit=1, inconclusive_limit=3,
        on_inconclusive=InconclusiveAction.ROLLBACK, error_limit=2, on_error=InconclusiveAction.ROLLBACK,
        approval_required=True, max_concurrent=1, ready_deadline="10m", allow_skip=False,
    ),
    RiskTier.HIGH: TierSettings(
        steps=[5, 25, 50], step_duration="3m", max_error_rate=0.02, max_increase=0.01,
        min_requests=100, failure_limit=1, inconclusive_limit=3,
        on_inconclusive=InconclusiveAction.ROLLBACK, error_limit=2, on_error=InconclusiveAction.ROLLBACK,
        approval_required=False, max_concurrent=2, ready_deadline="10m", allow_skip=False,
    ),
    RiskTier.MEDIUM: TierSettings(),
    RiskTier.LOW: TierSettings(
        steps=[50], step_duration="1m", max_error_rate=0.10, max_increase=0.05,
        min_requests=20, failure_limit=2, inconclusive_limit=5,
        on_inconclusive=InconclusiveAction.HOLD, error_limit=5, on_error=InconclusiveAction.HOLD,
        approval_required=False, max_concurrent=5, ready_deadline="5m", allow_skip=True,
    ),
}
"""Each tier's defaults: the riskier the tier, the smaller the first step and the stricter the gates.

When the metrics provider cannot be asked, a canary runs unobserved. Critical and high tiers roll back
after two such analyses in a row (the stable revision is known to be good; an unseen canary of a
service many depend on is not), medium after three (Argo Rollouts stops at four consecutive errors),
and low holds the canary where it is until the provider answers again. None of them promotes."""


class Tiers(ApiModel):
    """Canary settings per risk tier. A tier left out, or a field left out, takes the tier's default."""

    critical: TierSettings | None = None
    """Settings for services whose failure is an incident for the business."""
    high: TierSettings | None = None
    """Settings for services many users depend on."""
    medium: TierSettings | None = None
    """Settings for ordinary services."""
    low: TierSettings | None = None
    """Settings for internal or easily retried services."""

    def for_tier(self, tier: RiskTier) -> TierSettings:
        """The effective settings of a tier: its defaults, overridden by the fields the policy sets."""
        configured: TierSettings | None = getattr(self, tier.value)
        defaults = TIER_DEFAULTS[tier]
        if configured is None:
            return defaults
        overrides = {name: getattr(configured, name) for name in configured.model_fields_set}
        return defaults.model_copy(update=overrides)


def schedule_occurs(schedule: str) -> bool:
    """Whether a valid cron expression ever fires: ``0 0 30 2 *`` is well-formed but never does.

    croniter searches a bounded span (decades, enough for a 29 February) and gives up on a schedule that
    never fires, which is what this asks.
    """
    try:
        croniter(schedule, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return False
    return True


class FreezeWindow(ApiModel):
    """A period in which changes to the named tiers are refused unless someone breaks glass.

    Either absolute (``start`` and ``end``) or recurring (cron ``schedule`` + ``duration`` in ``timeZone``).
    """

    model_config = ApiModel.model_config | ConfigDict(
        # Lets the API server refuse a window that mixes both forms, before the operator sees it.
        json_schema_extra={"oneOf": [{"required": ["start", "end"]}, {"required": ["schedule", "duration"]}]}
    )

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Name shown in refusals and status, e.g. ``black-friday`` or ``weekend``."""
    reason: str = Field(default="", max_length=1024)
    """Why the freeze exists; shown to whoever is refused."""
    tiers: list[RiskTier] = Field(default_factory=lambda: list(RiskTier))
    """Tiers the window freezes; all tiers when left out."""
    start: datetime | None = None
    """Start of an absolute window (RFC 3339, with offset)."""
    end: datetime | None = None
    """End of an absolute window (RFC 3339, with offset)."""
    schedule: str | None = Field(default=None, min_length=9, max_length=128)
    """Cron expression (five fields) of when a recurring window opens, e.g. ``0 18 * * 5`` for Friday 18:00."""
    duration: Duration | None = None
    """How long a recurring window stays open, e.g. ``62h``."""
    time_zone: str = "UTC"
    """IANA time zone the schedule is read in, e.g. ``Europe/Berlin``."""

    @model_validator(mode="after")
    def _one_form(self) -> FreezeWindow:
        absolute = self.start is not None or self.end is not None
        recurring = self.schedule is not None or self.duration is not None
        if absolute == recurring:
            raise ValueError(
                f"freeze window {self.name!r} must set either start and end, or schedule and duration"
            )
        if absolute:
            if self.start is None or self.end is None:
                raise ValueError(f"freeze window {self.name!r} needs both start and end")
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise ValueError(f"freeze window {self.name!r}: start and end need a UTC offset, e.g. Z")
            if self.end <= self.start:
                raise ValueError(f"freeze window {self.name!r} ends before it starts")
        else:
            if self.schedule is None or self.duration is None:
                raise ValueError(f"freeze window {self.name!r} needs both schedule and duration")
            if len(self.schedule.split()) != 5 or not croniter.is_valid(self.schedule):
                raise ValueError(
                    f"freeze window {self.name!r}: schedule {self.schedule!r} is not a five-field cron expression"
                )
            if not schedule_occurs(self.schedule):
                raise ValueError(
                    f"freeze window {self.name!r}: schedule {self.schedule!r} names a date that never occurs "
                    "(such as 30 February or 31 April): pick days every named month has"
                )
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"freeze window {self.name!r}: {self.time_zone!r} is not an IANA time zone such as Europe/Berlin"
            ) from None
        return self


class ErrorBudgetGate(ApiModel):
    """Blocks releases of a service whose SLO error budget is spent (see ServiceOwnership ``slo``)."""

    enabled: bool = True
    """Whether an exhausted error budget blocks new releases."""
    exempt_change_types: list[ChangeType] = Field(
        default_factory=lambda: [ChangeType.FIX, ChangeType.RELIABILITY, ChangeType.SECURITY]
    )
    """Change types (annotation ``ballast.dev/change-type``) still admitted when the budget is spent."""


class PrometheusQueries(ApiModel):
    """PromQL templates for analysis. ``$namespace``, ``$pods`` (a pod-name regex) and ``$window`` are substituted."""

    requests: str = 'sum(increase(http_requests_total{namespace="$namespace",pod=~"$pods"}[$window]))'
    """Number of requests the selected pods served over the window."""
    errors: str = 'sum(increase(http_requests_total{namespace="$namespace",pod=~"$pods",code=~"5.."}[$window]))'
    """Number of those requests that failed."""
    latency_histogram: str = Field(default="http_request_duration_seconds_bucket", max_length=200,
                                   pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*_bucket$")
    """The ``_bucket`` series of the services' request latency histogram (in seconds, cumulative ``le``
    buckets as Prometheus clients export them), for tiers that set ``latency``."""
    latency_buckets: str = 'sum by (le) (increase($histogram{namespace="$namespace",pod=~"$pods"}[$window]))'
    """Requests per latency bucket of the selected pods over the window, one series per ``le``
    (``$histogram`` is ``latencyHistogram``). The quantile is computed from these counts exactly as
    ``histogram_quantile`` does, and the buckets also tell the verdict how fine that estimate is."""

    @model_validator(mode="after")
    def _renderable(self) -> PrometheusQueries:
        for name, template, known in (("requests", self.requests, QUERY_VARIABLES),
                                      ("errors", self.errors, QUERY_VARIABLES),
                                      ("latencyBuckets", self.latency_buckets, LATENCY_VARIABLES)):
            if problem := template_problem(template, known):
                raise ValueError(f"query {name} {problem}")
        return self


class PrometheusSettings(ApiModel):
    """Where analysis data comes from."""

    url: str | None = Field(default=None, pattern=r"^https?://")
    """Prometheus base URL; the operator's ``--prometheus-url`` when left out."""
    queries: PrometheusQueries = Field(default_factory=PrometheusQueries)
    """Query templates for request and error counts."""


class ReleasePolicySpec(ApiModel):
    """Release rules for every namespace the selector matches."""

    namespace_selector: LabelSelector = Field(default_factory=LabelSelector)
    """Namespaces this policy governs (by namespace labels). Where policies overlap, the most specific
    selector wins, then the first policy by name; the status of both says so."""
    admission: AdmissionSettings = Field(default_factory=AdmissionSettings)
    """Admission of workloads: mode, required annotations, exemptions."""
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    """Prometheus connection and analysis queries."""
    tiers: Tiers = Field(default_factory=Tiers)
    """Canary settings per risk tier."""
    freeze_windows: list[FreezeWindow] = Field(default_factory=list, max_length=64)
    """Periods in which changes to some tiers are refused unless someone breaks glass."""
    error_budget: ErrorBudgetGate = Field(default_factory=ErrorBudgetGate)
    """Gating of releases on the service's SLO error budget."""
    rollback_block_period: Duration = "24h"
    """How long a rolled-back pod template stays refused unless ``ballast.dev/retry`` is set."""
    release_history_limit: int = Field(default=50, ge=1, le=1000)
    """How many Release records are kept per Deployment; older ones are deleted."""
    notifications: list[NotificationReceiver] = Field(default_factory=list, max_length=16)
    """Chat and webhook receivers told about approvals awaited, blocks, rollbacks, promotions, break-glass
    and changes a freeze refused. Delivery never delays a release."""

    @model_validator(mode="after")
    def _unique_window_names(self) -> ReleasePolicySpec:
        names = [w.name for w in self.freeze_windows]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"freeze window names must be unique; repeated: {', '.join(duplicates)}")
        return self


class ActiveFreeze(ApiModel):
    """A freeze window open at the time the status was written."""

    name: str
    """The window's name."""
    tiers: list[RiskTier]
    """Tiers it freezes."""
    ends_at: datetime
    """When it closes."""


class AuditViolation(ApiModel):
    """A workload that breaks the policy but was admitted (it predates the policy, or mode is Warn/Audit)."""

    kind: str
    namespace: str
    name: str
    rule: str
    message: str


class FreezeRefusal(ApiModel):
    """A change a freeze window refused: what the scoreboard counts as blocked by freeze."""

    at: AwareDatetime
    """When it was first refused (retries of the same change are not counted again)."""
    kind: str
    namespace: str
    name: str
    revision: str
    """Pod-template hash of the refused change."""
    team: str = ""
    """Owning team: the ServiceOwnership's owner, else the workload's owner annotation."""
    tier: RiskTier
    window: str
    """The freeze window that refused it."""
    username: str = ""
    """Who made the change."""


class ShardStatus(ApiModel):
    """What one shard of a sharded operator (``--shard``) wrote about the policy's namespaces it governs."""

    name: str
    """The shard's name."""
    selector: str
    """Its namespace selector, as given to it (``kubectl -l`` syntax)."""
    lease: str
    """``namespace/name`` of its leader Lease; a shard whose Lease is not renewed for 5 minutes has stopped,
    and the other shards drop its entry."""
    governed_namespace_count: int = 0
    """How many of the policy's namespaces this shard governs."""
    violation_count: int = 0
    """How many admitted workloads in those namespaces break the policy."""
    violations: list[AuditViolation] = Field(default_factory=list)
    """The first of them, bounded."""


class ReleasePolicyStatus(ApiModel):
    """What the operator observed about the policy."""

    observed_generation: int | None = None
    """The ``metadata.generation`` this status was computed from."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready, Valid, NamespacesMatched and Overlapping; Sharded too with sharded operators."""
    governed_namespaces: list[str] = Field(default_factory=list)
    """Namespaces this policy governs right now (after overlap resolution and exemptions)."""
    governed_namespace_count: int = 0
    """How many namespaces it governs."""
    active_freezes: list[ActiveFreeze] = Field(default_factory=list)
    """Freeze windows open right now."""
    frozen_tiers: str = ""
    """Comma-separated tiers frozen right now, for the printer column."""
    violation_count: int = 0
    """How many admitted workloads break the policy."""
    violations: list[AuditViolation] = Field(default_factory=list)
    """The first violations, bounded."""
    freeze_refusals: list[FreezeRefusal] = Field(default_factory=list)
    """Changes the policy's freeze windows refused over the last 35 days (at most 500), newest last."""
    shards: list[ShardStatus] = Field(default_factory=list)
    """With sharded operators only: each shard's part, by name. ``violationCount`` and ``violations`` then
    sum the shards' parts, and the ``Sharded`` condition says whether the shards' selectors pick each
    governed namespace exactly once."""


class ReleasePolicy(ApiResource):
    """Release guardrails for the namespaces a platform team governs: admission rules, canary settings
    per risk tier, freeze windows and error-budget gating."""

    kind: ClassVar[str] = "ReleasePolicy"
    plural: ClassVar[str] = "releasepolicies"
    singular: ClassVar[str] = "releasepolicy"
    short_names: ClassVar[list[str]] = ["rp", "rpol"]
    scope: ClassVar[str] = "Cluster"
    printer_columns: ClassVar[list[dict[str, Any]]] = [
        {"name": "Mode", "type": "string", "jsonPath": ".spec.admission.mode"},
        {"name": "Namespaces", "type": "integer", "jsonPath": ".status.governedNamespaceCount"},
        {"name": "Frozen", "type": "string", "jsonPath": ".status.frozenTiers"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]

    spec: ReleasePolicySpec = Field(default_factory=ReleasePolicySpec)
    """Desired rules."""
    status: ReleasePolicyStatus | None = None
    """Observed state, written by the operator."""
