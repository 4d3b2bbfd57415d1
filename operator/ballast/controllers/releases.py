"""The release engine's shell: gather what the machine needs, ask it, write the status, act.

Two kinds of work, both serialised per key by a coalescer:

- ``("deployment", namespace, name)``: a governed Deployment carries the pending marker the mutating
  webhook set; make sure exactly one Release records the change.
- ``(namespace, name)``: one pass of a Release through :func:`ballast.release.machine.plan`.

The status is written before the actions (with a resourceVersion precondition), and actions are
idempotent, so a restarted operator resumes every release where the API server says it stands.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

import kopf
import kubernetes
from pydantic import ValidationError

from ballast.api import vocabulary
from ballast.api.common import GROUP, VERSION
from ballast.api.release import (
    FINAL_PHASES,
    WAITING_PHASES,
    Release,
    ReleasePhase,
    ReleaseSpec,
    ReleaseStatus,
    UserInfo,
    created_by_operator,
)
from ballast.api.releasepolicy import ReleasePolicySpec
from ballast.api.revisions import rolled_back_record, template_hash
from ballast.api.routing import RouteRecord
from ballast.api.vocabulary import (
    ABORT_ANNOTATION,
    APPROVED_BY_ANNOTATION,
    PROMOTE_ANNOTATION,
)
from ballast.controllers.analysis import look, unknown
from ballast.controllers.notifications import notify_release
from ballast.controllers.runtime import Runtime, now
from ballast.instruments import RELEASE_TRANSITIONS, ROLLBACK_ACTUATION
from ballast.kube import deployments, routes
from ballast.kube.client import CustomObjectRef, api_client, update_status
from ballast.policy.ownership import NamedOwnership, responsibility
from ballast.release.conditions import with_conditions
from ballast.release.gates import Block, BlockKind, ErrorBudget, GateInputs, ReleaseRef, waiting_block
from ballast.release.machine import (
    Action,
    ActionKind,
    Analysis,
    CanaryView,
    DeploymentView,
    Gates,
    Plan,
    Requests,
    RouteView,
    View,
    plan,
)
from ballast.release.record import Change, name_for_new_release, release_body
from ballast.release.routing import (
    canary_service_name,
    choose_route,
    held_by_a_release,
    restore_rules,
    route_block,
    route_problem,
    stable_service_name,
)
from ballast.release.statistics import ReleaseRecord

logger = logging.getLogger(__name__)

T = TypeVar("T")


# -- reading -----------------------------------------------------------------------------------------------

def _read_release(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kubernetes.client.CustomObjectsApi(api_client()).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "releases", name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise


def _annotations(body: dict[str, Any] | None) -> dict[str, str]:
    return ((body or {}).get("metadata") or {}).get("annotations") or {}


def _canary_view(body: dict[str, Any] | None, release_uid: str) -> CanaryView | None:
    """The release's canary; a Deployment of the canary's name that the release does not own is none of it."""
    if body is None or body["metadata"].get("deletionTimestamp") or not deployments.owned_by(body, release_uid):
        return None
    return CanaryView(replicas=body["spec"].get("replicas", 1),
                      ready_replicas=(body.get("status") or {}).get("readyReplicas", 0))


def _policy(runtime: Runtime, namespace: str) -> tuple[str, ReleasePolicySpec]:
    governing = runtime.governing_policy(namespace)
    if governing is None or governing.effective is None:
        return "", ReleasePolicySpec()
    return governing.name, governing.effective


def _refs(runtime: Runtime) -> list[ReleaseRef]:
    refs = []
    for values in runtime.releases.values():
        for snap in values:
            created = snap["metadata"].get("creationTimestamp")
            refs.append(ReleaseRef(
                namespace=snap["metadata"]["namespace"], name=snap["metadata"]["name"],
                owner=snap["spec"].get("owner", ""),
                phase=ReleasePhase((snap.get("status") or {}).get("phase") or ReleasePhase.PENDING),
                created=datetime.fromisoformat(created) if created else now(),
            ))
    return refs


def release_records(runtime: Runtime, namespace: str, service: str) -> list[ReleaseRecord]:
    """The kept Release records of one service, from the index."""
    records = []
    for snap in runtime.releases.get(namespace, []):
        if snap["spec"].get("service") != service:
            continue
        status = snap.get("status") or {}
        created = snap["metadata"].get("creationTimestamp")
        finished = status.get("finishedAt")
        records.append(ReleaseRecord(
            name=snap["metadata"]["name"],
            phase=ReleasePhase(status.get("phase") or ReleasePhase.PENDING),
            created=datetime.fromisoformat(created) if created else now(),
            finished=datetime.fromisoformat(finished) if finished else None,
        ))
    return records


# -- the release pass --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Pass:
    """What one pass over a release gathered, and the view of it the machine plans from."""

    key: tuple[str, str]
    body: dict[str, Any]
    spec: ReleaseSpec
    policy: ReleasePolicySpec
    deployment: dict[str, Any] | None
    canary: dict[str, Any] | None
    view: View


async def reconcile_release(runtime: Runtime, key: tuple[str, ...]) -> None:
    """One pass: gather, plan, analyse, write, act."""
    if key[0] == "deployment":
        await ensure_release(runtime, key[1], key[2])
        return
    gathered = await _gather(runtime, (key[0], key[1]))
    if gathered is None:
        return
    decision = _plan(gathered)
    decided = time.perf_counter()
    _analyse(runtime, gathered, decision)
    if await _write(runtime, gathered, decision):
        await _carry_out(runtime, gathered, decision, decided)


async def _gather(runtime: Runtime, key: tuple[str, str]) -> _Pass | None:
    """The release, its Deployment and canary as the API server holds them now; None when there is
    nothing to do (gone, malformed, finished, or not the operator's)."""
    namespace, name = key
    body = await asyncio.to_thread(_read_release, namespace, name)
    if body is None:
        return None
    try:
        release = Release.model_validate(body)
    except ValidationError:
        logger.warning("Release %s/%s is malformed and is left alone.", namespace, name)
        return None
    status = release.status or ReleaseStatus()
    if status.phase in FINAL_PHASES:
        runtime.analyses.forget(key)
        return None
    spec = release.spec
    deployment = await asyncio.to_thread(deployments.read_raw, namespace, spec.deployment)
    if not created_by_operator(body, deployment):
        # Debug only: every event of the Deployment brings it here again. The webhook refuses such Releases.
        logger.debug("Release %s/%s was not created by Ballast for Deployment %s and is left alone.",
                     namespace, name, spec.deployment)
        return None
    canary = await asyncio.to_thread(deployments.read_raw, namespace, deployments.canary_name(spec.deployment))
    _, policy = _policy(runtime, namespace)
    route = await asyncio.to_thread(_route_view, runtime, namespace, spec, status, policy, body["metadata"]["uid"])
    view = _view(runtime, key, body, spec, status, policy, deployment, canary, route)
    return _Pass(key, body, spec, policy, deployment, canary, view)


def _approval(status: ReleaseStatus, annotations: dict[str, str]) -> tuple[ReleaseStatus, bool]:
    """Whether the release is approved, and the status with the approver the webhook stamped recorded.

    A stamp that cannot be read is no approval.
    """
    if APPROVED_BY_ANNOTATION not in annotations:
        return status, False
    if status.approved_by is not None:
        return status, True
    try:
        approver = UserInfo.model_validate(json.loads(annotations[APPROVED_BY_ANNOTATION]))
    except (ValueError, ValidationError):
        return status, False
    return status.model_copy(update={"approved_by": approver}), True


def _route_view(runtime: Runtime, namespace: str, spec: ReleaseSpec, status: ReleaseStatus,
                policy: ReleasePolicySpec, release_uid: str) -> RouteView:
    """The HTTPRoute the release drives (as recorded), or before it starts the one it would drive (blocking)."""
    if status.route is not None:
        route = routes.read_route(namespace, status.route.name)
        return RouteView(rules=routes.route_rules(route), deployment=spec.deployment,
                         resource_version=route["metadata"]["resourceVersion"] if route else "")
    if status.phase not in WAITING_PHASES:
        return RouteView(deployment=spec.deployment)  # started on the replica split: it stays on it
    ownership = _ownership(runtime, namespace, spec.service)
    choice = choose_route(ownership.spec.traffic.gateway_route if ownership is not None else None,
                          policy.tiers.for_tier(spec.tier).gateway_route, spec.service, spec.deployment)
    if choice is None:
        return RouteView(deployment=spec.deployment)
    route = routes.read_route(namespace, choice.route.name)
    if route is not None and held_by_a_release(routes.route_rules(route) or [], spec.deployment) and \
            _hand_back(runtime, namespace, spec.deployment, route["metadata"]["name"]):
        route = routes.read_route(namespace, route["metadata"]["name"])
    rules = routes.route_rules(route)
    taken = [name for name in (stable_service_name(spec.deployment), canary_service_name(spec.deployment))
             if not _service_name_free(runtime, namespace, spec.deployment, name, release_uid)]
    problem = route_problem(choice, rules, namespace, spec.deployment,
                            backend_exists=routes.read_service(namespace, choice.route.backend) is not None,
                            taken=taken)
    return RouteView(choice=choice, rules=rules, problem=problem, deployment=spec.deployment,
                     resource_version=route["metadata"]["resourceVersion"] if route else "")


def _view(runtime: Runtime, key: tuple[str, str], body: dict[str, Any], spec: ReleaseSpec, status: ReleaseStatus,
          policy: ReleasePolicySpec, deployment: dict[str, Any] | None, canary: dict[str, Any] | None,
          route: RouteView) -> View:
    namespace, name = key
    tier = policy.tiers.for_tier(spec.tier)
    annotations = _annotations(body)
    status, approved = _approval(status, annotations)
    release_uid = body["metadata"]["uid"]
    block = waiting_block(GateInputs(
        me=ReleaseRef(namespace, name, spec.owner, status.phase,
                      datetime.fromisoformat(body["metadata"]["creationTimestamp"])),
        releases=_refs(runtime), limit=tier.max_concurrent, tier=spec.tier.value,
        approval_pending=tier.approval_required and not approved,
        canary_name_taken=deployments.name_taken_message(namespace, spec.deployment, name)
        if canary is not None and not deployments.owned_by(canary, release_uid) else None,
        budget=_error_budget(runtime, policy, namespace, spec.service),
        change_type=spec.change_type, emergency=spec.emergency,
    ))
    if block is None and status.phase in WAITING_PHASES and (text := route_block(
            route.choice, route.problem, tier.require_gateway_route, spec.tier.value, spec.service)):
        block = Block(BlockKind.GATEWAY_ROUTE, text)
    return View(
        now=now(), status=status, steps=spec.steps or tier.steps, to_revision=spec.to_revision,
        from_revision=spec.from_revision, tier=tier, deployment=DeploymentView.from_body(deployment),
        canary=_canary_view(canary, release_uid),
        gates=Gates(approval_required=tier.approval_required, approved=approved, block=block),
        requests=Requests(abort=annotations.get(ABORT_ANNOTATION), promote=PROMOTE_ANNOTATION in annotations),
        analysis=runtime.analyses.latest(key), route=route,
    )


def _plan(gathered: _Pass) -> Plan:
    """The machine's plan, its status carrying the conditions that follow from it."""
    decision = plan(gathered.view)
    decision.status = with_conditions(decision.status, gathered.view.now, gathered.body["metadata"].get("generation"))
    return decision


def _analyse(runtime: Runtime, gathered: _Pass, decision: Plan) -> None:
    """Start a look at the canary when the plan asks for one; its result brings the next pass."""
    if decision.analyze_window is None or gathered.deployment is None:
        return
    spec, policy = gathered.spec, gathered.policy
    runtime.analyses.start(gathered.key, decision.analyze_window, spec.tier.value, decision.early,
                           _look_job(runtime, policy, spec, gathered.deployment,
                                     gathered.canary if gathered.view.canary else None,
                                     decision.analyze_window, decision.early),
                           runtime.executor_for(runtime.prometheus_url(policy)))


async def _write(runtime: Runtime, gathered: _Pass, decision: Plan) -> bool:
    """Write the planned status before acting on it; False when someone wrote meanwhile (planned again)."""
    if decision.status == gathered.view.status:
        return True
    body = gathered.body
    namespace, name = gathered.key
    try:
        owned = {**decision.status.to_wire_clearing(), "observedGeneration": body["metadata"].get("generation")}
        await _blocking(runtime, decision, update_status, CustomObjectRef("releases", name, namespace),
                        body.get("status"), owned, body["metadata"]["resourceVersion"])
    except kubernetes.client.ApiException as error:
        if error.status == 409:
            runtime.release_reconciler.request(gathered.key)  # someone wrote meanwhile: plan again on fresh data
            return False
        raise
    return True


async def _blocking(runtime: Runtime, decision: Plan, call: Callable[..., T], *args: Any) -> T:
    """Run a blocking API call of this pass off the event loop: a rollback's on the rollback lane
    (``Runtime.rollback_executor``), every other on asyncio's default threads."""
    if decision.status.phase is not ReleasePhase.ROLLING_BACK:
        return await asyncio.to_thread(call, *args)
    context = contextvars.copy_context()  # as asyncio.to_thread does
    return await asyncio.get_running_loop().run_in_executor(runtime.rollback_executor,
                                                            functools.partial(context.run, call, *args))


async def _carry_out(runtime: Runtime, gathered: _Pass, decision: Plan, decided: float) -> None:
    """Announce a transition, take the plan's actions, and schedule what comes next."""
    body, spec, deployment = gathered.body, gathered.spec, gathered.deployment
    if decision.transitioned:
        _announce(body, deployment, decision.status, spec)
        notify_release(gathered.policy, body, spec, decision.status, gathered.view.now)
    for action in decision.actions:
        if not await _blocking(runtime, decision, _act, action, body, deployment, spec):
            runtime.release_reconciler.request(gathered.key)  # the Deployment changed since the plan: plan again
            return
    if decision.transitioned and decision.status.phase is ReleasePhase.ROLLING_BACK:
        ROLLBACK_ACTUATION.observe(time.perf_counter() - decided)
    if decision.status.phase in FINAL_PHASES:
        runtime.analyses.forget(gathered.key)
        runtime.ownership_reconciler.request(gathered.key[0])
        await asyncio.to_thread(_trim_history, runtime, gathered.key[0], spec.deployment,
                                gathered.policy.release_history_limit)
    elif decision.requeue_after is not None:
        runtime.release_reconciler.request(gathered.key, after=decision.requeue_after)


def _ownership(runtime: Runtime, namespace: str, service: str) -> NamedOwnership | None:
    """The valid ServiceOwnership named ``service`` in ``namespace``, if any."""
    return next((o for o in runtime.named_ownerships(namespace) if o.name == service), None) if service else None


def _error_budget(runtime: Runtime, policy: ReleasePolicySpec, namespace: str, service: str) -> ErrorBudget | None:
    """The service's error budget, where the policy gates on it and the service has an SLO."""
    if not (policy.error_budget.enabled and service):
        return None
    ownership = _ownership(runtime, namespace, service)
    if ownership is None or ownership.spec.slo is None:
        return None
    return ErrorBudget(service, runtime.error_budgets.get((namespace, service)), ownership.spec.slo.window,
                       list(policy.error_budget.exempt_change_types))


def _look_job(runtime: Runtime, policy: ReleasePolicySpec, spec: ReleaseSpec, deployment: dict[str, Any],
              canary: dict[str, Any] | None, window: tuple[datetime, datetime], early: bool) -> Callable[[], Analysis]:
    """The blocking work of one look at the canary, for the analysis runner's threads.

    Both sides are the pods their ReplicaSets own now, named exactly: never pods of another Deployment
    whose name shares a prefix, and never pods the release does not own.
    """
    url = runtime.prometheus_url(policy)
    tier = policy.tiers.for_tier(spec.tier)
    ownership = _ownership(runtime, deployment["metadata"]["namespace"], spec.service)
    service_checks = list(ownership.spec.checks) if ownership is not None else []

    def job() -> Analysis:
        if url is None:
            return unknown(window, "No Prometheus URL is configured: set spec.prometheus.url in the ReleasePolicy "
                                   "or --prometheus-url on the operator.")
        stable = deployments.read_stable_revision(deployment)
        if stable is None:
            return unknown(window, f"Deployment {spec.deployment} has no stable ReplicaSet to compare with.")
        canary_pods = deployments.read_pod_names(canary) if canary is not None else []
        stable_pods = deployments.read_pod_names(deployment, stable.pod_template_hash)
        return look(runtime.provider(url), policy.prometheus.queries, deployment["metadata"]["namespace"],
                    deployments.pod_names_pattern(canary_pods), deployments.pod_names_pattern(stable_pods),
                    window, tier, early, service_checks)

    return job


def _announce(release: dict[str, Any], deployment: dict[str, Any] | None, status: ReleaseStatus,
              spec: ReleaseSpec) -> None:
    RELEASE_TRANSITIONS.labels(tier=spec.tier.value, phase=status.phase.value, reason=status.reason).inc()
    bad = status.phase in (ReleasePhase.ROLLING_BACK, ReleasePhase.ROLLED_BACK, ReleasePhase.FAILED,
                           ReleasePhase.BLOCKED) or status.reason == "WeightNotReached"
    message = f"{status.phase.value}: {status.message}"
    kind = "Warning" if bad else "Normal"
    kopf.event(cast(kopf.Body, release), type=kind, reason=status.reason or status.phase.value, message=message)
    if deployment is not None:
        kopf.event(cast(kopf.Body, deployment), type=kind, reason=status.reason or status.phase.value,
                   message=f"Release {release['metadata']['name']} {message}")


def _act(action: Action, release: dict[str, Any], deployment: dict[str, Any] | None, spec: ReleaseSpec) -> bool:
    """Carry out one action; False (and nothing done) when the Deployment's template or the route changed since
    the plan."""
    namespace = release["metadata"]["namespace"]
    if action.kind in (ActionKind.ROUTE_TRAFFIC, ActionKind.RESTORE_ROUTE):
        return _act_on_route(action, release, spec)
    if action.kind is ActionKind.DELETE_CANARY:
        deployments.delete_canary(namespace, deployments.canary_name(spec.deployment), release["metadata"]["uid"])
        return True
    if deployment is None:
        return True
    # Act on the Deployment as it is now (its status moves all the time, so the plan's resourceVersion is
    # soon stale), but only if its template is still the one planned for: promoting or restoring over a
    # newer pending change would release that change unchecked. The write is conditional on the
    # resourceVersion read here, so nothing can slip in between the check and the write either.
    current = deployments.read_raw(namespace, spec.deployment)
    if current is None or template_hash(current["spec"]["template"]) != template_hash(deployment["spec"]["template"]):
        return False
    rv = current["metadata"]["resourceVersion"]
    kept = {k: v for k, v in _annotations(current).items() if k not in vocabulary.BOOKKEEPING_ANNOTATIONS}
    if action.kind is ActionKind.ENSURE_CANARY:
        try:
            deployments.ensure_canary(deployments.canary_body(current, release, action.replicas))
        except deployments.CanaryNameTaken as error:
            # Taken mid-release: the canary stays missing, and the readiness deadline rolls the change back.
            logger.warning("%s", error)
    elif action.kind is ActionKind.PROMOTE:
        deployments.replace_fields(namespace, spec.deployment, rv,
                                   {"/spec/paused": False, "/metadata/annotations": kept})
    elif action.kind is ActionKind.RESTORE:
        fields: dict[str, Any] = {"/spec/paused": False}
        if template_hash(current["spec"]["template"]) == spec.to_revision:
            stable = deployments.read_stable_revision(current, excluding=spec.to_revision)
            if stable is None:
                raise RuntimeError(f"Deployment {namespace}/{spec.deployment} has no ReplicaSet to roll back to")
            fields["/spec/template"] = stable.template
            kept[vocabulary.ROLLED_BACK_ANNOTATION] = rolled_back_record(
                _annotations(current), spec.to_revision, now())
        fields["/metadata/annotations"] = kept
        deployments.replace_fields(namespace, spec.deployment, rv, fields)
    return True


def _act_on_route(action: Action, release: dict[str, Any], spec: ReleaseSpec) -> bool:
    """Route the canary's share through the HTTPRoute, or take the release out of it; False when the route
    changed since the plan."""
    record = action.route
    if record is None:
        return True
    namespace, uid = release["metadata"]["namespace"], release["metadata"]["uid"]
    if action.kind is ActionKind.RESTORE_ROUTE:
        _leave_route(namespace, record, uid)
        return True
    current = deployments.read_raw(namespace, spec.deployment)
    stable = deployments.read_stable_revision(current, excluding=spec.to_revision) if current else None
    backend = routes.read_service(namespace, record.backend)
    if current is None or stable is None or backend is None:
        logger.warning("Release %s/%s cannot route traffic: the Deployment, its stable ReplicaSet or Service %s "
                       "is missing.", namespace, release["metadata"]["name"], record.backend)
        return True  # the canary gets no traffic; its analysis stays inconclusive and the tier decides
    ports = routes.service_ports(backend)
    canary_selector = {**(current["spec"]["selector"].get("matchLabels") or {}),
                       vocabulary.TRACK_LABEL: vocabulary.CANARY_TRACK}
    try:
        routes.ensure_service(routes.service_body(record.stable_service, namespace, routes.stable_selector(
            current, stable.pod_template_hash), ports, release))
        routes.ensure_service(routes.service_body(record.canary_service, namespace, canary_selector, ports, release))
    except routes.ServiceNameTaken as error:
        logger.warning("%s", error)
        return True
    return routes.write_backend_refs(namespace, record.name, action.resource_version, action.rules)


def _finished_releases(runtime: Runtime, namespace: str, deployment: str) -> list[dict[str, Any]]:
    """The finished Releases of a Deployment (index snapshots), newest first."""
    return sorted((s for s in runtime.releases.get(namespace, []) if s["spec"].get("deployment") == deployment
                   and (s.get("status") or {}).get("phase") in {p.value for p in FINAL_PHASES}),
                  key=lambda s: s["metadata"].get("creationTimestamp") or "", reverse=True)


def _service_name_free(runtime: Runtime, namespace: str, deployment: str, name: str, release_uid: str) -> bool:
    """Whether the release may use a Service of this name: none exists or its own does. One that a finished
    release of the Deployment left behind (the operator stopped before deleting it) is deleted."""
    current = routes.read_service(namespace, name)
    if current is None or deployments.owned_by(current, release_uid):
        return True
    for snap in _finished_releases(runtime, namespace, deployment):
        if deployments.owned_by(current, snap["metadata"]["uid"]):
            routes.delete_service(namespace, name, snap["metadata"]["uid"])
            return True
    return False


def _hand_back(runtime: Runtime, namespace: str, deployment: str, route: str) -> bool:
    """Restore a route that a finished release of the Deployment left routed (the operator stopped between
    writing the final status and restoring); False when no finished release recorded it."""
    for snap in _finished_releases(runtime, namespace, deployment):
        body = _read_release(namespace, snap["metadata"]["name"])
        recorded = ((body or {}).get("status") or {}).get("route")
        if body is None or not recorded or recorded.get("name") != route:
            continue
        record = RouteRecord.model_validate(recorded)
        logger.warning("HTTPRoute %s/%s still routes to finished Release %s; restoring it.", namespace, route,
                       snap["metadata"]["name"])
        _leave_route(namespace, record, body["metadata"]["uid"])
        return True
    return False


RESTORE_ATTEMPTS = 5


def _leave_route(namespace: str, record: RouteRecord, release_uid: str) -> None:
    """Take the release out of its route, over whatever was written meanwhile (a final phase is never planned
    again, so this must not give up on a conflict), then delete the release's two Services."""
    for _ in range(RESTORE_ATTEMPTS):
        route = routes.read_route(namespace, record.name)
        changes = restore_rules(record, routes.route_rules(route))
        if route is None or not changes or routes.write_backend_refs(
                namespace, record.name, route["metadata"]["resourceVersion"], changes):
            break
    else:
        raise RuntimeError(f"HTTPRoute {namespace}/{record.name} kept changing while Ballast restored it")
    for service in (record.canary_service, record.stable_service):
        routes.delete_service(namespace, service, release_uid)


def _trim_history(runtime: Runtime, namespace: str, deployment: str, limit: int) -> None:
    """Keep the newest ``limit`` finished Releases of a Deployment; delete the older ones."""
    api = kubernetes.client.CustomObjectsApi(api_client())
    for snap in _finished_releases(runtime, namespace, deployment)[limit:]:
        try:
            api.delete_namespaced_custom_object(GROUP, VERSION, namespace, "releases", snap["metadata"]["name"])
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise


# -- recording a change as a Release -----------------------------------------------------------------------

async def ensure_release(runtime: Runtime, namespace: str, name: str) -> None:
    """Create the Release of a Deployment's pending change, once."""
    deployment = await asyncio.to_thread(deployments.read_raw, namespace, name)
    if deployment is None or vocabulary.PENDING_ANNOTATION not in _annotations(deployment):
        return
    if runtime.governing_policy(namespace) is None:
        return  # no webhook writes the marker there: whoever did, it is not a change Ballast holds
    revision = template_hash(deployment["spec"]["template"])
    if name_for_new_release(deployment, revision, list(runtime.releases.get(namespace, []))) is None:
        return  # saves the reads below while the change's Release is open
    stable = await asyncio.to_thread(deployments.read_stable_revision, deployment)
    policy_name, policy = _policy(runtime, namespace)
    responsible = responsibility(deployment["metadata"].get("labels") or {}, _annotations(deployment),
                                 runtime.named_ownerships(namespace), policy.admission.required_annotations)
    change = Change(deployment, stable.template if stable else None, policy_name, policy,
                    service=responsible.service, team=responsible.team, tier=responsible.tier)
    # Decided again, from one snapshot taken after the awaits: the index may have caught up meanwhile.
    release_name = name_for_new_release(deployment, revision, list(runtime.releases.get(namespace, [])))
    if release_name is None:
        return
    body = release_body(change, release_name)
    try:
        await asyncio.to_thread(kubernetes.client.CustomObjectsApi(api_client()).create_namespaced_custom_object,
                                GROUP, VERSION, namespace, "releases", body)
    except kubernetes.client.ApiException as error:
        if error.status != 409:  # created by an earlier pass whose result the index has not shown yet
            raise
    runtime.release_reconciler.request((namespace, body["metadata"]["name"]))
