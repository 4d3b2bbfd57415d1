"""Which reconcilers each watched event wakes: the operator's triggers, in one table.

Every reconciler is level-based (it reads the indexes and the API server, never the event), so an event
only says where to look again. :data:`TRIGGERS` maps each watched resource to the reconcilers its events
wake, each with the keys to reconcile. Besides these events:

- the clock wakes the policy pass, as freeze windows open and close (``startup._resync``);
- a changed error budget wakes its namespace's ownerships (``startup._refresh_error_budgets``);
- a change a freeze refused wakes the refusal recorder of the replica that refused it, on every replica
  (``controllers/webhook_handlers.py``);
- a release that ends wakes its namespace's ownerships, and a finished look at a canary, its release;
- taking the lead wakes every reconciler for every key (:func:`every_key`): a follower's events were
  seen but not acted on.

Until the indexes are filled, events ask for nothing: the objects are still being listed, and once they
are filled the operator asks for a pass over every key the indexes hold (:func:`every_key`; kopf does not
hold the handlers back meanwhile, see ``controllers/toggles.py``). Every event handler keeps kopf's handler
context for passes asked for from outside a handler (:func:`keep_handler_context`).

Most events of a workload are kube-controller-manager writing its status (every rollout step, every pod
that becomes ready), and most events of a ReleasePolicy are Ballast writing its status. The ownership
and policy passes read neither: of a workload they read its :data:`FACTS` (name, labels, annotations,
owners), of a policy its spec. An event that leaves those unchanged wakes only the release passes, which
follow a Deployment's rollout (:func:`changed_facts`). At 10,000 Deployments this is what keeps a
controller's status writes from running the policy audit over every workload again and again.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Hashable, Iterable
from operator import attrgetter
from typing import Any

import kopf

from ballast.api.common import GROUP, VERSION
from ballast.api.release import FINAL_PHASES
from ballast.api.vocabulary import PENDING_ANNOTATION, RELEASE_ANNOTATION
from ballast.controllers.coalesce import Coalescer
from ballast.controllers.runtime import Runtime
from ballast.kube.deployments import is_canary

EVERY_POLICY = "all"
"""The policy pass's only key: policies govern each other's namespaces (overlaps), so they are reconciled together."""

Keys = Callable[[Runtime, kopf.Body], Iterable[Hashable]]


def _metadata(body: kopf.Body) -> dict[str, Any]:
    return dict(body.get("metadata") or {})


def its_namespace(_: Runtime, body: kopf.Body) -> list[str]:
    return [_metadata(body).get("namespace") or ""]


def the_namespace_itself(_: Runtime, body: kopf.Body) -> list[str]:
    return [_metadata(body).get("name") or ""]


def every_policy(_: Runtime, __: kopf.Body) -> list[str]:
    return [EVERY_POLICY]


def namespaces_with_ownerships(runtime: Runtime, _: kopf.Body) -> list[str]:
    """A policy's required annotation keys may have changed for every governed namespace."""
    return list(runtime.ownerships.keys())


def the_release(_: Runtime, body: kopf.Body) -> list[tuple[str, ...]]:
    metadata = _metadata(body)
    return [(metadata.get("namespace") or "", metadata.get("name") or "")]


def releases_of_deployment(runtime: Runtime, body: kopf.Body) -> list[tuple[str, ...]]:
    """A canary's release; for any other Deployment, the recording of its pending change and its unfinished
    releases."""
    metadata = _metadata(body)
    namespace, name = metadata.get("namespace") or "", metadata.get("name") or ""
    annotations = metadata.get("annotations") or {}
    if is_canary(body):
        release = annotations.get(RELEASE_ANNOTATION)
        return [(namespace, release)] if release else []
    keys: list[tuple[str, ...]] = [("deployment", namespace, name)] if PENDING_ANNOTATION in annotations else []
    final = {p.value for p in FINAL_PHASES}
    return keys + [(namespace, snap["metadata"]["name"]) for snap in runtime.releases.get(namespace, [])
                   if snap["spec"].get("deployment") == name and (snap.get("status") or {}).get("phase") not in final]


def open_releases_of_namespace(runtime: Runtime, body: kopf.Body) -> list[tuple[str, ...]]:
    """A namespace relabelled into this operator's shard brings its unfinished releases along."""
    namespace = _metadata(body).get("name") or ""
    final = {p.value for p in FINAL_PHASES}
    return [(namespace, snap["metadata"]["name"]) for snap in runtime.releases.get(namespace, [])
            if (snap.get("status") or {}).get("phase") not in final]


OWNERSHIPS: Callable[[Runtime], Coalescer[Any]] = attrgetter("ownership_reconciler")
POLICIES: Callable[[Runtime], Coalescer[Any]] = attrgetter("policy_reconciler")
RELEASES: Callable[[Runtime], Coalescer[Any]] = attrgetter("release_reconciler")

TRIGGERS: dict[str, list[tuple[Callable[[Runtime], Coalescer[Any]], Keys]]] = {
    # The policy pass audits every workload kind; releases follow their Deployment and canary.
    "deployments": [(OWNERSHIPS, its_namespace), (POLICIES, every_policy), (RELEASES, releases_of_deployment)],
    "statefulsets": [(POLICIES, every_policy)],
    "daemonsets": [(POLICIES, every_policy)],
    "serviceownerships": [(OWNERSHIPS, its_namespace)],
    # Ownerships show their current and last release and the statistics.
    "releases": [(RELEASES, the_release), (OWNERSHIPS, its_namespace)],
    "releasepolicies": [(POLICIES, every_policy), (OWNERSHIPS, namespaces_with_ownerships)],
    "namespaces": [(POLICIES, every_policy), (OWNERSHIPS, the_namespace_itself),
                   (RELEASES, open_releases_of_namespace)],
}


def workload_facts(body: kopf.Body) -> Hashable:
    metadata = _metadata(body)
    return (metadata.get("name"), _frozen(metadata.get("labels")), _frozen(metadata.get("annotations")),
            frozenset(ref.get("uid") for ref in metadata.get("ownerReferences") or []))


def policy_facts(body: kopf.Body) -> Hashable:
    # generation moves with every spec change (CRDs with a status subresource), never with a status write.
    metadata = _metadata(body)
    return metadata.get("generation"), _frozen(metadata.get("labels"))


def _frozen(mapping: Any) -> frozenset[tuple[str, str]]:
    return frozenset(dict(mapping or {}).items())


FACTS: dict[str, Callable[[kopf.Body], Hashable]] = {
    "deployments": workload_facts,
    "statefulsets": workload_facts,
    "daemonsets": workload_facts,
    "releasepolicies": policy_facts,
}
"""What the ownership and policy passes read of an object of these kinds; see the module docstring."""


def changed_facts(runtime: Runtime, plural: str, body: kopf.Body, event_type: str | None) -> bool:
    """Whether this event changed what the ownership and policy passes read (always, for other kinds).

    Remembers a hash of the facts per object: a few dozen bytes each, not a second copy of the index.
    """
    facts = FACTS.get(plural)
    if facts is None:
        return True
    metadata = _metadata(body)
    key = (plural, metadata.get("namespace"), metadata.get("name"))
    if event_type == "DELETED":
        runtime.seen_facts.pop(key, None)
        return True
    fingerprint = hash(facts(body))
    if runtime.seen_facts.get(key) == fingerprint:
        return False
    runtime.seen_facts[key] = fingerprint
    return True


def every_key(runtime: Runtime) -> None:
    """Ask for a pass over everything the indexes hold, as every object's event would: on taking the lead."""
    runtime.policy_reconciler.request(EVERY_POLICY)
    for namespace in list(runtime.ownerships.keys()):
        runtime.ownership_reconciler.request(namespace)
    final = {p.value for p in FINAL_PHASES}
    for namespace, snaps in list(runtime.releases.items()):
        for snap in snaps:
            if (snap.get("status") or {}).get("phase") not in final:
                runtime.release_reconciler.request((namespace or "", snap["metadata"]["name"]))
    for namespace, workloads in list(runtime.workloads.items()):
        for workload in workloads:
            if workload.kind == "Deployment" and PENDING_ANNOTATION in workload.annotations:
                runtime.release_reconciler.request(("deployment", namespace or "", workload.name))


def keep_handler_context(runtime: Runtime) -> None:
    """Keep a copy of the first event handler's context: ``kopf.event`` works only in the context variables
    kopf sets for its handlers, and the passes the clock or the lead asks for run in it."""
    if runtime.handler_context is None:
        runtime.handler_context = contextvars.copy_context()
        runtime.handler_called.set()


def trigger(runtime: Runtime, plural: str, body: kopf.Body, event_type: str | None = None) -> None:
    """Ask every reconciler an event of ``plural`` concerns for a pass over the keys it concerns."""
    keep_handler_context(runtime)
    # Remembered while listing and following too: it is what the indexes hold when passes begin.
    changed = changed_facts(runtime, plural, body, event_type)
    if changed:
        runtime.audit_inputs += 1
    if not runtime.indexes_filled.is_set() or not runtime.acting.leading:
        return  # nothing to act on yet: filled indexes, and taking the lead, bring a pass over every key
    for reconciler, keys in TRIGGERS[plural]:
        if not changed and reconciler is not RELEASES:
            continue
        coalescer = reconciler(runtime)
        for key in keys(runtime, body):
            coalescer.request(key)


@kopf.on.event("apps", "v1", "deployments")
@kopf.on.event("apps", "v1", "statefulsets")
@kopf.on.event("apps", "v1", "daemonsets")
@kopf.on.event(GROUP, VERSION, "serviceownerships")
@kopf.on.event(GROUP, VERSION, "releases")
async def object_changed(resource: kopf.Resource, body: kopf.Body, type: str | None, memo: kopf.Memo,
                         **_: Any) -> None:
    trigger(memo.runtime, resource.plural, body, type)


@kopf.on.event(GROUP, VERSION, "releasepolicies")
@kopf.on.event("namespaces")
async def governance_changed(resource: kopf.Resource, body: kopf.Body, type: str | None, memo: kopf.Memo,
                             **_: Any) -> None:
    """Which policy governs which namespace may have changed: forget what was derived from it first."""
    runtime: Runtime = memo.runtime
    runtime.invalidate()
    trigger(runtime, resource.plural, body, type)
