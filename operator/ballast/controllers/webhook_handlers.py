"""The webhooks' handlers: thin adapters from kopf's admission arguments to the pure rules
(``policy/rules.py``, ``policy/bookkeeping.py``).

The hot path reads only in-memory indexes and caches, and logs nothing at INFO: the API server is
waiting, and every millisecond here is a millisecond on every deploy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import kopf
from pydantic import ValidationError

from ballast.api.common import GROUP, VERSION
from ballast.api.releasepolicy import AdmissionMode, ReleasePolicySpec
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.api.vocabulary import APPROVE_ANNOTATION, APPROVED_BY_ANNOTATION, EMERGENCY_ANNOTATION
from ballast.controllers.notifications import notify_admission
from ballast.controllers.runtime import Options, Runtime, describe_validation_error, now
from ballast.instruments import ADMISSION_LATENCY, ADMISSION_REQUESTS, BREAK_GLASS
from ballast.kube.deployments import release_canaries
from ballast.kube.events import post_event
from ballast.policy.bookkeeping import mutation
from ballast.policy.ownership import judged_tier
from ballast.policy.rules import (
    AdmissionContext,
    BreakGlass,
    Decision,
    ReleaseRequest,
    WorkloadRequest,
    evaluate,
    judge_ownership_change,
    judge_release_request,
)
from ballast.policy.workloads import WorkloadSummary
from ballast.webhooks.configurations import (
    APPROVALS_WEBHOOK,
    OBJECTS_WEBHOOK,
    PAUSE_WEBHOOK,
    RELEASES_WEBHOOK,
    WORKLOADS_WEBHOOK,
)

OPERATIONS: list[Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]] = ["CREATE", "UPDATE"]
# The handlers below take ``old``, ``new`` and ``operation``, which kopf passes to every admission handler
# but its WebhookFn protocol does not list: mypy cannot match them, hence the ignores on the decorators.
logger = logging.getLogger(__name__)


def _decision_label(decision: Decision) -> str:
    if not decision.allowed:
        return "refused"
    if decision.findings and decision.mode is AdmissionMode.AUDIT:
        return "audited"
    return "warned" if decision.warnings else "allowed"


@kopf.on.validate("apps", "v1", "deployments", id=WORKLOADS_WEBHOOK, operations=OPERATIONS)
@kopf.on.validate("apps", "v1", "statefulsets", id=WORKLOADS_WEBHOOK, operations=OPERATIONS)
@kopf.on.validate("apps", "v1", "daemonsets", id=WORKLOADS_WEBHOOK, operations=OPERATIONS)  # type: ignore[arg-type]
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
    kind = resource.kind or resource.plural
    runtime: Runtime | None = memo.get("runtime")
    if runtime is None or not runtime.indexes_ready:
        ADMISSION_REQUESTS.labels(kind=kind, decision="refused", rule="operator-starting").inc()
        raise kopf.AdmissionError(
            "Ballast's operator is starting and cannot check this workload yet: retry in a few seconds.", code=503)
    metadata = body.get("metadata", {})
    namespace = metadata.get("namespace") or ""
    username = (userinfo or {}).get("username", "")
    context = runtime.admission_context(namespace, now())
    if context is None or _by_operator(userinfo, memo):
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
    if not dryrun:
        _record(runtime, context, body, f"{kind} {namespace}/{request.name}", decision)
    ADMISSION_LATENCY.labels(kind=kind).observe(time.perf_counter() - started)
    if not decision.allowed:
        raise kopf.AdmissionError(decision.refusal, code=403)


def _record(runtime: Runtime, context: AdmissionContext, body: kopf.Body, subject: str, decision: Decision) -> None:
    """Break-glass as an event, and a change a freeze refused in the policy's status, both off the hot path.

    Both are written by the replica that answered, leader or not: they record this answer, which no other
    replica knows of, and neither overwrites anything (an event is new, a refusal is merged in)."""
    notify_admission(context, body, decision)
    if decision.break_glass is not None:
        glass = decision.break_glass
        BREAK_GLASS.labels(namespace=body.get("metadata", {}).get("namespace") or "",
                           window=glass.window or "none").inc()
        runtime.in_background(asyncio.to_thread(
            post_event, dict(body), "Warning", "BreakGlass", _break_glass_message(subject, glass)))
    if decision.frozen is not None and not decision.allowed:
        # Listed in the policy's status, for the scoreboard.
        runtime.pending_refusals.setdefault(context.policy_name, []).append(decision.frozen)
        runtime.refusal_recorder.request(context.policy_name)


def _break_glass_message(subject: str, glass: BreakGlass) -> str:
    if glass.window is not None:
        return f"{glass.username} let {subject} through freeze window {glass.window} with {EMERGENCY_ANNOTATION}: " \
               f"{glass.reason}"
    return f"{glass.username} set {EMERGENCY_ANNOTATION} on {subject}: {glass.reason} (no freeze window is open; " \
           "a Deployment's release records the reason, which lets it past a spent error budget)"


@kopf.on.validate(GROUP, VERSION, "releasepolicies", id=OBJECTS_WEBHOOK, operations=OPERATIONS)
@kopf.on.validate(GROUP, VERSION, "serviceownerships", id=OBJECTS_WEBHOOK, operations=OPERATIONS)  # type: ignore[arg-type]
async def validate_ballast_object(
    resource: kopf.Resource, body: kopf.Body, old: kopf.Body | None, subresource: str | None,
    userinfo: dict[str, Any], dryrun: bool, warnings: list[str], memo: kopf.Memo, **_: Any,
) -> None:
    """The rules a structural schema cannot express (on Kubernetes 1.20, which has no CEL), and no
    lowering of a ServiceOwnership's tier past a freeze."""
    if subresource:
        return
    model = ReleasePolicySpec if resource.plural == "releasepolicies" else ServiceOwnershipSpec
    metadata = body.get("metadata", {})
    try:
        spec = model.model_validate(body.get("spec") or {})
    except ValidationError as error:
        where = f"{metadata.get('namespace')}/{metadata.get('name')}" if metadata.get("namespace") \
            else metadata.get("name")
        raise kopf.AdmissionError(f"{resource.kind} {where} is invalid: {describe_validation_error(error)}.",
                                  code=422) from None
    runtime: Runtime | None = memo.get("runtime")
    if not isinstance(spec, ServiceOwnershipSpec) or old is None or runtime is None or _by_operator(userinfo, memo):
        return
    try:
        before = ServiceOwnershipSpec.model_validate(old.get("spec") or {})
    except ValidationError:
        return  # nothing reliable to compare with
    namespace = metadata.get("namespace") or ""
    context = runtime.admission_context(namespace, now())
    if context is None:
        return
    workloads = [(w.kind, w.name, w.labels) for w in runtime.workloads.get(namespace, [])]
    decision = judge_ownership_change(namespace, metadata.get("name") or "", before, spec, old, body, workloads,
                                      (userinfo or {}).get("username", ""), context)
    warnings.extend(decision.warnings)
    if not dryrun:
        _record(runtime, context, body, f"ServiceOwnership {namespace}/{metadata.get('name')}", decision)
    if not decision.allowed:
        raise kopf.AdmissionError(decision.refusal, code=403)


@kopf.on.mutate("apps", "v1", "deployments", id=PAUSE_WEBHOOK, operations=OPERATIONS)  # type: ignore[arg-type]
async def pause_changed_template(
    body: kopf.Body, old: kopf.Body | None, new: kopf.Body | None, patch: kopf.Patch, operation: str,
    subresource: str | None, userinfo: dict[str, Any], memo: kopf.Memo, **_: Any,
) -> None:
    """Hold a governed Deployment whose pod template changed, so the release engine can canary it, and
    keep the bookkeeping annotations only the webhook and the operator write (see ``policy/bookkeeping.py``)."""
    runtime: Runtime | None = memo.get("runtime")
    if runtime is None or not runtime.indexes_ready:
        raise kopf.AdmissionError(
            "Ballast's operator is starting and cannot take over this change yet: retry in a few seconds.", code=503)
    if subresource or new is None or _by_operator(userinfo, memo):
        return
    metadata = body.get("metadata", {})
    namespace = metadata.get("namespace") or ""
    canaries = release_canaries(runtime.releases.get(namespace, []))
    if WorkloadSummary.from_body(body).is_release_canary(canaries) or metadata.get("deletionTimestamp"):
        return
    context = runtime.admission_context(namespace, now())
    if context is None:
        return
    change = mutation(operation, old, new, _identity(userinfo), judged_tier(old, new, context.ownerships))
    if change.pause:
        patch.setdefault("spec", {})["paused"] = True
    if change.annotations:
        patch.setdefault("metadata", {}).setdefault("annotations", {}).update(change.annotations)


@kopf.on.mutate(GROUP, VERSION, "releases", id=APPROVALS_WEBHOOK, operations=["UPDATE"])  # type: ignore[arg-type]
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


@kopf.on.validate(GROUP, VERSION, "releases", id=RELEASES_WEBHOOK, operations=OPERATIONS, subresource="*")  # type: ignore[arg-type]
def validate_release_request(
    operation: str, old: kopf.Body | None, new: kopf.Body | None, subresource: str | None, userinfo: dict[str, Any],
    memo: kopf.Memo, **_: Any,
) -> None:
    """Only the operator records Releases; people steer them, with four eyes and no skipping where forbidden."""
    if new is None or _by_operator(userinfo, memo):
        return
    metadata = new.get("metadata", {})
    namespace = metadata.get("namespace") or ""
    runtime: Runtime | None = memo.get("runtime")
    governing = runtime.governing_policy(namespace) if runtime is not None else None
    policy = governing.effective if governing and governing.effective else ReleasePolicySpec()
    refusal = judge_release_request(ReleaseRequest(operation, namespace, metadata.get("name") or "", old, new,
                                                   (userinfo or {}).get("username", ""), subresource), policy)
    if refusal is not None:
        raise kopf.AdmissionError(refusal, code=403)


def _by_operator(userinfo: dict[str, Any], memo: kopf.Memo) -> bool:
    """Whether the request is the operator's own write (which admission never refuses or rewrites)."""
    options: Options | None = memo.get("options")
    return options is not None and options.operator_username is not None and \
        (userinfo or {}).get("username") == options.operator_username


@dataclass(frozen=True)
class _PersonsUpdate:
    """An update of an object by someone other than the operator, seen through its annotations."""

    identity: str
    """The requester's identity as JSON, for the record."""
    old: dict[str, str]
    new: dict[str, str]

    def added(self, key: str) -> bool:
        return key in self.new and key not in self.old


def _update_by_a_person(old: kopf.Body | None, new: kopf.Body | None, subresource: str | None,
                        userinfo: dict[str, Any], memo: kopf.Memo) -> _PersonsUpdate | None:
    if subresource or old is None or new is None or _by_operator(userinfo, memo):
        return None
    return _PersonsUpdate(
        identity=_identity(userinfo),
        old=dict(old.get("metadata", {}).get("annotations") or {}),
        new=dict(new.get("metadata", {}).get("annotations") or {}),
    )


def _identity(userinfo: dict[str, Any]) -> str:
    """The requester as the API server authenticated them, as JSON for an annotation."""
    return json.dumps({"username": userinfo.get("username", ""), "uid": userinfo.get("uid"),
                       "groups": userinfo.get("groups") or []}, sort_keys=True)
