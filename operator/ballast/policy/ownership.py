"""Who answers for a workload, and what a ServiceOwnership's status says.

:func:`responsibility` is the one rule for a workload's service, team and tier: admission judges a change
by it and the release engine records it on the change's Release, so both always agree.

Ownership is complete when the service declares its alerts and every selected Deployment carries the
required annotations, well-formed, with the same owner as the ServiceOwnership. The condition message
lists exactly what is missing, so the fix is obvious.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ballast.api.common import TIER_ORDER, RiskTier, stricter
from ballast.api.conditions import Observation
from ballast.api.releasepolicy import RequiredAnnotations
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.api.vocabulary import DEFAULT_TIER
from ballast.policy.workloads import WorkloadSummary, annotation_problems


@dataclass(frozen=True)
class NamedOwnership:
    name: str
    spec: ServiceOwnershipSpec


@dataclass(frozen=True)
class Responsibility:
    """Who answers for a workload, by the ServiceOwnerships that select it."""

    selected_by: tuple[NamedOwnership, ...]
    ownership: NamedOwnership | None
    """The ServiceOwnership that selects it, when exactly one does (several are a finding, not a choice)."""
    team: str
    """That ServiceOwnership's owner, else the workload's owner annotation ("" when it has none)."""
    tier: RiskTier
    """The strictest tier of every ServiceOwnership selecting it: a mistake in selectors never lowers it."""

    @property
    def service(self) -> str:
        return self.ownership.name if self.ownership else ""


def selecting(labels: Mapping[str, str], ownerships: Iterable[NamedOwnership]) -> list[NamedOwnership]:
    """The ServiceOwnerships whose selector matches these labels."""
    return [o for o in ownerships if o.spec.selector.matches(labels)]


def workload_tier(labels: Mapping[str, str], ownerships: Iterable[NamedOwnership]) -> RiskTier:
    """The strictest tier of the ServiceOwnerships selecting these labels (the default when none does)."""
    return _strictest(selecting(labels, ownerships))


def _strictest(owners: Iterable[NamedOwnership]) -> RiskTier:
    tiers = [o.spec.risk_tier for o in owners]
    return max(tiers, key=TIER_ORDER.index) if tiers else DEFAULT_TIER


def responsibility(labels: Mapping[str, str], annotations: Mapping[str, str], ownerships: Sequence[NamedOwnership],
                   keys: RequiredAnnotations) -> Responsibility:
    """The service, team and tier of a workload with these labels and annotations."""
    owners = selecting(labels, ownerships)
    ownership = owners[0] if len(owners) == 1 else None
    return Responsibility(
        selected_by=tuple(owners),
        ownership=ownership,
        team=ownership.spec.owner if ownership else annotations.get(keys.owner, ""),
        tier=_strictest(owners),  # not workload_tier: the audit asks this of every workload, select once
    )


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def judged_tier(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
                ownerships: Sequence[NamedOwnership]) -> RiskTier:
    """The tier a change is judged under: the stricter of the workload's before and after it."""
    return stricter(workload_tier(_labels(old), ownerships), workload_tier(_labels(new), ownerships))


@dataclass
class OwnershipAssessment:
    """The computed part of a ServiceOwnership's status."""

    workloads: list[str]
    conditions: list[Observation] = field(default_factory=list)


def assess_ownership(
    spec: ServiceOwnershipSpec,
    deployments: Iterable[WorkloadSummary],
    keys: RequiredAnnotations,
) -> OwnershipAssessment:
    """Match Deployments by the selector and judge completeness and readiness."""
    matched = sorted((d for d in deployments if spec.selector.matches(d.labels)), key=lambda d: d.name)
    gaps: list[str] = []
    if not spec.alerts:
        gaps.append("spec.alerts is empty: name the alerting rules that page for this service")
    for deployment in matched:
        gaps.extend(
            problem.sentence(f"Deployment {deployment.name}")
            for problem in annotation_problems(deployment.annotations, keys, expected_owner=spec.owner)
        )
    complete = Observation(
        type="OwnershipComplete",
        status=not gaps,
        reason="Complete" if not gaps else "Incomplete",
        message="Owner, alerts and runbook are declared and every workload carries them."
        if not gaps else "; ".join(gaps) + ".",
    )
    if not matched:
        ready = Observation(
            "Ready", False, "NoWorkloads",
            "The selector matches no Deployment in this namespace: check spec.selector against the "
            "Deployments' labels.",
        )
    elif gaps:
        ready = Observation("Ready", False, "OwnershipIncomplete", "Ownership is incomplete; see OwnershipComplete.")
    else:
        ready = Observation("Ready", True, "Ready", f"Governs {len(matched)} Deployment(s) with complete ownership.")
    return OwnershipAssessment(workloads=[d.name for d in matched], conditions=[ready, complete])
