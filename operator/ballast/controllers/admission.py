"""Admission handlers: thin adapters from kopf's webhook arguments to the pure rules.

The hot path reads only in-memory indexes and caches, and logs nothing at INFO: the API server is
waiting, and every millisecond here is a millisecond on every deploy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import kopf
from pydantic import ValidationError

from ballast.admission.webhook import APPROVALS_WEBHOOK, OBJECTS_WEBHOOK, PAUSE_WEBHOOK, WORKLOADS_WEBHOOK
from ballast.api.common import GROUP, VERSION, RiskTier
from ballast.api.releasepolicy import AdmissionMode, ReleasePolicySpec
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.controllers.runtime import Runtime, describe_validation_error, now
from ballast.instruments import ADMISSION_LATENCY, ADMISSION_REQUESTS, BREAK_GLASS
from ballast.kube.deployments import BOOKKEEPING_ANNOTATIONS, CHANGED_BY_ANNOTATION, PENDING_ANNOTATION, is_canary
from ballast.kube.events import post_event
from ballast.policy.admission import Decision, WorkloadRequest, evaluate
from ballast.policy.workloads import template_hash
from ballast.release.requests import APPROVE_ANNOTATION, APPROVED_BY_ANNOTATION, PROMOTE_ANNOTATION

OPERATIONS = ["CREATE", "UPDATE"]
logger = logging.getLogger(__name__)


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
    username = (userinfo or {}).get("username", "")
    context = runtime.admission_context(namespace, now())
    if context is None or username == runtime.options.operator_username:
        # The operator's own writes (canaries, rollbacks during a freeze) must never be refused.
        ADMISSION_REQUESTS.labels(kind=kind, decision="exempt", rule="none").inc()
        return
    request = WorkloadRequest(
        operation=operation, kind=kind, namespace=namespace,
        name=metadata.get("name") or metadata.get("generateName") or "",
        new=new, old=old, subresource=subresource, username=username,
    )
    try:
        decision = evaluate(request, context)
    except Exception:  # a bug in one rule must not fail every deploy with a 500: it follows the policy's mode
        logger.exception("Admission of %s %s/%s failed.", kind, namespace, request.name)
        ADMISSION_REQUESTS.labels(kind=kind, decision="error", rule="internal-error").inc()
        problem = (f"{kind} {namespace}/{request.name} could not be checked against ReleasePolicy "
                   f"{context.policy_name} because of an internal error in Ballast (see the operator's log)")
        if context.policy.admission.mode is AdmissionMode.ENFORCE:
            raise kopf.AdmissionError(f"{problem}: retry, and tell the platform team if it persists.",
                                      code=500) from None
        if context.policy.admission.mode is AdmissionMode.WARN:
            warnings.append(f"{problem}; admitted because the policy's mode is Warn.")
        return
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
    if decision.frozen is not None and not decision.allowed and not dryrun:
        # Recorded in the policy's status by its reconciler, off the hot path, for the scoreboard.
        runtime.pending_refusals.setdefault(context.policy_name, []).append(decision.frozen)
        if runtime.policy_reconciler is not None:
            runtime.policy_reconciler.request("all")
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


@kopf.on.mutate("apps", "v1", "deployments", id=PAUSE_WEBHOOK, operations=["UPDATE"])
async def pause_changed_template(
    body: kopf.Body, old: kopf.Body | None, new: kopf.Body | None, patch: kopf.Patch,
    subresource: str | None, userinfo: dict[str, Any], memo: kopf.Memo, **_: Any,
) -> None:
    """Hold a governed Deployment whose pod template changed, so the release engine can canary it."""
    runtime: Runtime | None = memo.get("runtime")
    if runtime is None or not runtime.indexes_ready:
        raise kopf.AdmissionError(
            "Ballast's operator is starting and cannot take over this change yet: retry in a few seconds.", code=503)
    username = (userinfo or {}).get("username", "")
    if subresource or old is None or new is None or username == runtime.options.operator_username:
        return
    metadata = body.get("metadata", {})
    if is_canary(body) or metadata.get("deletionTimestamp"):
        return
    if runtime.admission_context(metadata.get("namespace") or "", now()) is None:
        return
    old_annotations = old.get("metadata", {}).get("annotations") or {}
    new_annotations = new.get("metadata", {}).get("annotations") or {}
    old_template, new_template = old.get("spec", {}).get("template"), new.get("spec", {}).get("template")
    if old_template != new_template:
        patch.setdefault("spec", {})["paused"] = True
        annotations = patch.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[PENDING_ANNOTATION] = template_hash(new_template)
        annotations[CHANGED_BY_ANNOTATION] = _identity(userinfo)
    elif PENDING_ANNOTATION in old_annotations:
        # A release is under way: whatever the request says (say, an apply that does not know about
        # spec.paused), the Deployment stays held and keeps its bookkeeping until the release ends.
        if not new.get("spec", {}).get("paused"):
            patch.setdefault("spec", {})["paused"] = True
        for key in BOOKKEEPING_ANNOTATIONS:
            if key in old_annotations and new_annotations.get(key) != old_annotations[key]:
                patch.setdefault("metadata", {}).setdefault("annotations", {})[key] = old_annotations[key]


@kopf.on.mutate(GROUP, VERSION, "releases", id=APPROVALS_WEBHOOK, operations=["UPDATE"])
async def stamp_approver(
    old: kopf.Body | None, new: kopf.Body | None, patch: kopf.Patch, subresource: str | None,
    userinfo: dict[str, Any], memo: kopf.Memo, **_: Any,
) -> None:
    """Record who approved, from the API server's word for it; nobody can write the record by hand."""
    update = _update_by_a_person(old, new, subresource, userinfo, memo)
    if update is None:
        return
    annotations = patch.setdefault("metadata", {}).setdefault("annotations", {})
    if update.added(APPROVE_ANNOTATION):
        annotations[APPROVED_BY_ANNOTATION] = update.identity
    elif update.new.get(APPROVED_BY_ANNOTATION) != update.old.get(APPROVED_BY_ANNOTATION):
        annotations[APPROVED_BY_ANNOTATION] = update.old.get(APPROVED_BY_ANNOTATION)  # None removes it
    if not annotations:
        del patch["metadata"]


@kopf.on.validate(GROUP, VERSION, "releases", id=OBJECTS_WEBHOOK, operations=["UPDATE"])
def validate_release_request(
    old: kopf.Body | None, new: kopf.Body | None, subresource: str | None, userinfo: dict[str, Any],
    memo: kopf.Memo, **_: Any,
) -> None:
    """Four eyes on approvals, and no skipping of steps where the tier forbids it."""
    update = _update_by_a_person(old, new, subresource, userinfo, memo)
    if update is None or new is None:
        return
    metadata = new.get("metadata", {})
    subject = f"Release {metadata.get('namespace')}/{metadata.get('name')}"
    spec = new.get("spec") or {}
    if update.added(APPROVE_ANNOTATION):
        author = (spec.get("changedBy") or {}).get("username")
        if author and author == update.username:
            raise kopf.AdmissionError(
                f"{subject} was changed by {update.username}, who cannot also approve it (four eyes): ask "
                "someone else to run `kubectl ballast approve`.", code=403)
    runtime: Runtime | None = memo.get("runtime")
    if update.added(PROMOTE_ANNOTATION) and runtime is not None:
        governing = runtime.governing_policy(metadata.get("namespace") or "")
        policy = governing.effective if governing and governing.effective else ReleasePolicySpec()
        tier = spec.get("tier") or "medium"
        if not policy.tiers.for_tier(RiskTier(tier)).allow_skip:
            raise kopf.AdmissionError(
                f"{subject} is {tier} tier, whose policy does not allow skipping steps: let the analysis finish, "
                "or `kubectl ballast abort` it.", code=403)


@dataclass(frozen=True)
class _PersonsUpdate:
    """An update of an object by someone other than the operator, seen through its annotations."""

    username: str
    identity: str
    """The requester's identity as JSON, for the record."""
    old: dict[str, str]
    new: dict[str, str]

    def added(self, key: str) -> bool:
        return key in self.new and key not in self.old


def _update_by_a_person(old: kopf.Body | None, new: kopf.Body | None, subresource: str | None,
                        userinfo: dict[str, Any], memo: kopf.Memo) -> _PersonsUpdate | None:
    if subresource or old is None or new is None:
        return None
    runtime: Runtime | None = memo.get("runtime")
    username = (userinfo or {}).get("username", "")
    if runtime is not None and username == runtime.options.operator_username:
        return None
    return _PersonsUpdate(
        username=username,
        identity=_identity(userinfo),
        old=dict(old.get("metadata", {}).get("annotations") or {}),
        new=dict(new.get("metadata", {}).get("annotations") or {}),
    )


def _identity(userinfo: dict[str, Any]) -> str:
    """The requester as the API server authenticated them, as JSON for an annotation."""
    return json.dumps({"username": userinfo.get("username", ""), "uid": userinfo.get("uid"),
                       "groups": userinfo.get("groups") or []}, sort_keys=True)
