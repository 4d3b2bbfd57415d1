"""What a ServiceOwnership's status says: which Deployments it selects and whether ownership is complete.

Ownership is complete when the service declares its alerts and every selected Deployment carries the
required annotations, well-formed, with the same owner as the ServiceOwnership. The condition message
lists exactly what is missing, so the fix is obvious.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ballast.api.releasepolicy import RequiredAnnotations
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.policy.conditions import Observation
from ballast.policy.workloads import WorkloadSummary, annotation_problems


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
