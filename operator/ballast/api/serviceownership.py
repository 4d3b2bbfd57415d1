"""``ServiceOwnership``: who owns a service, how risky it is, and how to operate it."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ballast.api.checks import Checks
from ballast.api.common import ApiModel, ApiResource, Condition, Duration, HttpUrl, LabelSelector, RiskTier, TeamName
from ballast.api.routing import TrafficRouting


class Contact(ApiModel):
    """A way to reach the owning team."""

    name: str = Field(min_length=1, max_length=128)
    """Who or what this is, e.g. ``on-call`` or ``team lead``."""
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    """E-mail address."""
    chat: str | None = Field(default=None, max_length=256)
    """Chat channel, e.g. ``#checkout-oncall``."""
    pager: str | None = Field(default=None, max_length=256)
    """Paging service or escalation policy id."""


class ServiceLevelObjective(ApiModel):
    """The availability the service promises; its error budget gates releases."""

    availability: float = Field(gt=0.0, lt=1.0)
    """Target ratio of successful requests, e.g. ``0.999``."""
    window: Duration = "30d"
    """Rolling window the target applies to."""


class ServiceOwnershipSpec(ApiModel):
    """Ownership and operating facts of one service, made of the Deployments the selector matches."""

    selector: LabelSelector
    """Label selector over Deployments in this namespace that make up the service."""
    owner: TeamName
    """The owning team, e.g. ``payments``; workloads must carry the same owner annotation."""
    contacts: list[Contact] = Field(default_factory=list, max_length=16)
    """How to reach the team."""
    risk_tier: RiskTier = RiskTier.MEDIUM
    """How carefully changes are released: critical, high, medium or low. Defaults to medium."""
    runbook: HttpUrl
    """URL of the service's runbook."""
    alerts: list[str] = Field(default_factory=list, max_length=64)
    """Names of the alerting rules that page for this service."""
    slo: ServiceLevelObjective | None = None
    """Optional availability objective; with it, an exhausted error budget blocks feature releases."""
    checks: Checks = Field(default_factory=list)
    """The service's own custom checks, judged in every analysis of its releases beside the policy tier's."""
    traffic: TrafficRouting = Field(default_factory=TrafficRouting)
    """How traffic reaches the canary: an HTTPRoute's exact weights, or (by default) the replica split."""


class ReleaseReference(ApiModel):
    """A pointer to a Release and its outcome."""

    name: str
    """The Release's name."""
    phase: str = ""
    """Its phase when this status was written."""


class ReleaseStatistics(ApiModel):
    """Delivery figures over this service's kept Release records."""

    releases: int = 0
    """Releases that finished (promoted or rolled back)."""
    rollbacks: int = 0
    """Releases that were rolled back."""
    change_failure_rate: float = 0.0
    """Rolled back / finished."""
    mean_time_to_restore_seconds: float | None = None
    """Mean time from a failing change being admitted to its rollback completing."""


class ServiceOwnershipStatus(ApiModel):
    """What the operator observed about the service."""

    observed_generation: int | None = None
    """The ``metadata.generation`` this status was computed from."""
    conditions: list[Condition] = Field(default_factory=list)
    """Ready and OwnershipComplete."""
    workloads: list[str] = Field(default_factory=list)
    """Deployments the selector matches right now."""
    workload_count: int = 0
    """How many Deployments it matches."""
    current_release: ReleaseReference | None = None
    """The release in progress, if any."""
    last_release: ReleaseReference | None = None
    """The most recent finished release."""
    statistics: ReleaseStatistics | None = None
    """Delivery figures."""
    error_budget_remaining: float | None = None
    """Fraction of the SLO's error budget left over its window (may go negative when overspent)."""


class ServiceOwnership(ApiResource):
    """Declares who owns a service (a set of Deployments), its risk tier, runbook, alerts and SLO."""

    kind: ClassVar[str] = "ServiceOwnership"
    plural: ClassVar[str] = "serviceownerships"
    singular: ClassVar[str] = "serviceownership"
    short_names: ClassVar[list[str]] = ["so", "svcown"]
    scope: ClassVar[str] = "Namespaced"
    printer_columns: ClassVar[list[dict[str, Any]]] = [
        {"name": "Owner", "type": "string", "jsonPath": ".spec.owner"},
        {"name": "Tier", "type": "string", "jsonPath": ".spec.riskTier"},
        {"name": "Workloads", "type": "integer", "jsonPath": ".status.workloadCount"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]

    spec: ServiceOwnershipSpec
    """Desired ownership facts."""
    status: ServiceOwnershipStatus | None = None
    """Observed state, written by the operator."""
