"""Admission handlers: thin adapters from kopf's webhook arguments to the pure rules.

The hot path reads only in-memory indexes and caches, and logs nothing at INFO: the API server is
waiting, and every millisecond here is a millisecond on every deploy.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kopf
from pydantic import ValidationError

from ballast.admission.webhook import OBJECTS_WEBHOOK, WORKLOADS_WEBHOOK
from ballast.api.common import GROUP, VERSION
from ballast.api.releasepolicy import AdmissionMode, ReleasePolicySpec
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.controllers.runtime import Runtime, describe_validation_error, now
from ballast.instruments import ADMISSION_LATENCY, ADMISSION_REQUESTS, BREAK_GLASS
from ballast.kube.events import post_event
from ballast.policy.admission import Decision, WorkloadRequest, evaluate

OPERATIONS = ["CREATE", "UPDATE"]


def _decision_label(decision: Decision) -> str:
    if not decision.allowed:
        return "refused"
    if decision.findings and decision.mode is AdmissionMode.AUDIT:
        return "audited"
    return "warned" if decision.warnings else "allowed"


@kopf.on.validate("apps", "v1", "deployments", id=WORKLOADS_WEBHOOK, operations=OPERATIONS)
@kopf.on.validate("apps", "v1", "statefulsets", id=WORKLOADS_WEBHOOK, operations=OPERATIONS)
@kopf.on.validate("apps", "v1", "daemonsets", id=WORKLOADS_WEBHOOK, operations=OPERATIONS)
async def validate_workload(
    resource: kopf.Resource,
    body: kopf.Body,
    old: kopf.Body | None,
    new: kopf.Body | None,
    operation: str,
    subresource: str | None,
    userinfo: dict[str, Any],
    dryrun: bool,
    warnings: list[str],
    memo: kopf.Memo,
    **_: Any,
) -> None:
    started = time.perf_counter()
    kind = resource.kind
    runtime: Runtime | None = memo.get("runtime")
    if runtime is None or not runtime.indexes_ready:
        ADMISSION_REQUESTS.labels(kind=kind, decision="refused", rule="operator-starting").inc()
        raise kopf.AdmissionError(
            "Ballast's operator is starting and cannot check this workload yet: retry in a few seconds.", code=503)
    metadata = body.get("metadata", {})
    namespace = metadata.get("namespace") or ""
    context = runtime.admission_context(namespace, now())
    if context is None:
        ADMISSION_REQUESTS.labels(kind=kind, decision="exempt", rule="none").inc()
        return
    request = WorkloadRequest(
        operation=operation, kind=kind, namespace=namespace,
        name=metadata.get("name") or metadata.get("generateName") or "",
        new=new, old=old, subresource=subresource, username=(userinfo or {}).get("username", ""),
    )
    decision = evaluate(request, context)
    warnings.extend(decision.warnings)
    label = _decision_label(decision)
    for rule in {f.rule.value for f in decision.findings} or {"none"}:
        ADMISSION_REQUESTS.labels(kind=kind, decision=label, rule=rule).inc()
    if decision.break_glass is not None and not dryrun:
        glass = decision.break_glass
        BREAK_GLASS.labels(namespace=namespace, window=glass.window).inc()
        # Off the hot path: the API server is waiting for this answer, not for the event.
        runtime.in_background(asyncio.to_thread(
            post_event, dict(body), "Warning", "BreakGlass",
            f"{glass.username} let {kind} {namespace}/{request.name} through freeze window "
            f"{glass.window} with ballast.dev/emergency: {glass.reason}",
        ))
    ADMISSION_LATENCY.labels(kind=kind).observe(time.perf_counter() - started)
    if not decision.allowed:
        raise kopf.AdmissionError(decision.refusal, code=403)


@kopf.on.validate(GROUP, VERSION, "releasepolicies", id=OBJECTS_WEBHOOK, operations=OPERATIONS)
@kopf.on.validate(GROUP, VERSION, "serviceownerships", id=OBJECTS_WEBHOOK, operations=OPERATIONS)
def validate_ballast_object(resource: kopf.Resource, body: kopf.Body, subresource: str | None, **_: Any) -> None:
    """The rules a structural schema cannot express (on Kubernetes 1.20, which has no CEL)."""
    if subresource:
        return
    model = ReleasePolicySpec if resource.plural == "releasepolicies" else ServiceOwnershipSpec
    try:
        model.model_validate(body.get("spec") or {})
    except ValidationError as error:
        metadata = body.get("metadata", {})
        where = f"{metadata.get('namespace')}/{metadata.get('name')}" if metadata.get("namespace") \
            else metadata.get("name")
        raise kopf.AdmissionError(f"{resource.kind} {where} is invalid: {describe_validation_error(error)}.",
                                  code=422) from None
