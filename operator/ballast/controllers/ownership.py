"""ServiceOwnership status: matched Deployments and ownership completeness, kept current as things change."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from ballast.api.conditions import Observation
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.controllers.releases import release_records
from ballast.controllers.runtime import (
    Runtime,
    describe_validation_error,
    post_condition_events,
    updated_conditions,
    write_status,
)
from ballast.instruments import export_service_metrics
from ballast.kube.client import CustomObjectRef
from ballast.policy.ownership import assess_ownership
from ballast.release.statistics import summarize

logger = logging.getLogger(__name__)


async def reconcile_namespace(runtime: Runtime, namespace: str) -> None:
    """Recompute the status of every ServiceOwnership in one namespace from the indexes."""
    ownerships = list(runtime.ownerships.get(namespace, []))
    if not ownerships:
        return
    deployments = [w for w in runtime.workloads.get(namespace, []) if w.kind == "Deployment" and not w.is_canary]
    keys = runtime.required_annotations(namespace)
    for snap in ownerships:
        try:
            spec = ServiceOwnershipSpec.model_validate(snap["spec"])
        except ValidationError as error:
            observed = [Observation("Ready", False, "InvalidSpec",
                                    f"ServiceOwnership {namespace}/{snap['metadata']['name']} is invalid: "
                                    f"{describe_validation_error(error)}")]
            workloads: list[str] = []
        else:
            assessment = assess_ownership(spec, deployments, keys)
            observed, workloads = assessment.conditions, assessment.workloads
        conditions, changed = updated_conditions(snap, observed)
        so_name = snap["metadata"]["name"]
        history = summarize(release_records(runtime, namespace, so_name))
        budget = runtime.error_budgets.get((namespace, so_name))
        owned = {
            "observedGeneration": snap["metadata"].get("generation"),
            "conditions": conditions,
            "workloads": workloads,
            "workloadCount": len(workloads),
            "currentRelease": history.current.to_wire() if history.current else None,
            "lastRelease": history.last.to_wire() if history.last else None,
            "statistics": history.statistics.to_wire(),
            "errorBudgetRemaining": budget,
        }
        export_service_metrics(namespace, so_name, history.statistics, budget)
        ref = CustomObjectRef("serviceownerships", snap["metadata"]["name"], namespace)
        written = await write_status(ref, snap, owned)
        if written is None:
            continue
        if written:
            post_condition_events(snap, changed)
