"""Once indexed, an event of a kind Ballast indexes by the thousand holds only its metadata; handlers and
indexes see what they saw before."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.structs import ephemera, references
from kopf._core.actions import lifecycles
from kopf._core.engines import indexing
from kopf._core.reactor import inventory, processing

import ballast.controllers.startup  # noqa: F401  (installs the shedding, as the operator does)
from ballast.controllers.indexes import ownerships_by_namespace, snapshot, workload_summary
from ballast.controllers.shedding import SHED_PLURALS, shed, sheddable
from ballast.controllers.triggers import policy_facts, releases_of_deployment, workload_facts
from ballast.kube.deployments import is_canary

DEPLOYMENTS = references.Resource("apps", "v1", "deployments", kind="Deployment", namespaced=True)
RELEASEPOLICIES = references.Resource("ballast.dev", "v1alpha1", "releasepolicies", kind="ReleasePolicy",
                                      namespaced=False)


def deployment_body(**metadata: Any) -> dict[str, Any]:
    """A Deployment as the API server lists it: managedFields, a pod template and a status."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "shop-canary", "namespace": "shop", "uid": "u-1", "resourceVersion": "42", "generation": 3,
            "creationTimestamp": "2026-12-05T10:00:00Z",
            "labels": {"app": "shop", "ballast.dev/track": "canary"},
            "annotations": {"ballast.dev/owner": "payments", "ballast.dev/release": "shop-abc",
                            "deployment.kubernetes.io/revision": "2"},
            "ownerReferences": [{"apiVersion": "ballast.dev/v1alpha1", "kind": "Release", "name": "shop-abc",
                                 "uid": "r-1"}],
            "finalizers": ["example.com/keep"],
            "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}}],
            **metadata,
        },
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shop"}},
                 "template": {"metadata": {"labels": {"app": "shop"}},
                              "spec": {"containers": [{"name": "app", "image": "app:2"}]}}},
        "status": {"observedGeneration": 3, "replicas": 1, "readyReplicas": 1,
                   "conditions": [{"type": "Available", "status": "True"}]},
    }


def test_the_operator_makes_kopf_shed_after_indexing():
    assert getattr(indexing.index_resource, "sheds", False)


def test_shedding_drops_spec_status_and_managed_fields_and_keeps_the_rest_of_the_metadata():
    body = deployment_body()
    metadata = copy.deepcopy({k: v for k, v in body["metadata"].items() if k != "managedFields"})
    shed(body)
    assert body == {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata}
    shed(body)  # twice: nothing more goes
    assert body["metadata"] == metadata


def test_what_the_triggers_read_is_the_same_before_and_after_shedding():
    whole, shed_body = deployment_body(), deployment_body()
    shed(shed_body)
    runtime = type("R", (), {"releases": {}})()
    assert workload_facts(kopf.Body(shed_body)) == workload_facts(kopf.Body(whole))
    assert is_canary(shed_body) and is_canary(whole)
    assert releases_of_deployment(runtime, kopf.Body(shed_body)) == releases_of_deployment(runtime, kopf.Body(whole))
    assert policy_facts(kopf.Body(shed_body)) == policy_facts(kopf.Body(whole))


def test_indexed_snapshots_do_not_change_when_their_body_is_shed_afterwards():
    body = deployment_body()
    summary, snap = workload_summary(kopf.Body(body), "Deployment"), snapshot(kopf.Body(body))
    expected_snap = copy.deepcopy(snap)
    shed(body)
    assert summary == workload_summary(kopf.Body(deployment_body()), "Deployment")
    assert snap == expected_snap and snap["spec"]["replicas"] == 1 and snap["status"]["readyReplicas"] == 1


def test_only_the_many_kinds_with_metadata_only_handlers_are_shed():
    registry = kopf.OperatorRegistry()
    assert sheddable(registry, DEPLOYMENTS)
    assert not sheddable(registry, RELEASEPOLICIES)  # few; their triggers read the generation only, but why risk
    assert "namespaces" not in SHED_PLURALS


def test_a_kind_with_changing_handlers_or_daemons_keeps_its_whole_body():
    # Those read the whole body, and kopf diffs it for them.
    with_update, with_daemon = kopf.OperatorRegistry(), kopf.OperatorRegistry()
    kopf.on.update("apps", "v1", "deployments", registry=with_update)(lambda **_: None)
    kopf.daemon("apps", "v1", "deployments", registry=with_daemon)(lambda **_: None)
    assert not sheddable(with_update, DEPLOYMENTS)
    assert not sheddable(with_daemon, DEPLOYMENTS)


def process(registry: kopf.OperatorRegistry, raw_event: dict[str, Any], resource: references.Resource,
            indexers: indexing.OperatorIndexers) -> None:
    """One event through kopf's own processing, as a watcher's worker does it."""
    indexers.ensure(registry._indexing.get_all_handlers())

    async def run() -> None:
        await processing.process_resource_event(
            lifecycle=lifecycles.all_at_once, indexers=indexers, registry=registry,
            settings=kopf.OperatorSettings(), memories=inventory.ResourceMemories(),
            memobase=ephemera.AnyMemo(kopf.Memo()), resource=resource, raw_event=raw_event,
            event_queue=asyncio.Queue())

    asyncio.run(run())


def test_through_kopfs_processing_the_index_sees_the_whole_body_and_the_event_handler_the_metadata():
    registry = kopf.OperatorRegistry()
    seen: list[dict[str, Any]] = []

    @kopf.index("apps", "v1", "deployments", id="images", registry=registry)
    def images(body: kopf.Body, **_: Any) -> dict[str, str]:
        return {body["metadata"]["name"]: body["spec"]["template"]["spec"]["containers"][0]["image"]}

    @kopf.on.event("apps", "v1", "deployments", registry=registry)
    def changed(body: kopf.Body, **_: Any) -> None:
        seen.append({"facts": workload_facts(body), "canary": is_canary(body), "spec": dict(body.spec),
                     "finalizers": list(body.metadata.get("finalizers", []))})

    indexers = indexing.OperatorIndexers()
    raw_event = {"type": None, "object": deployment_body()}
    process(registry, raw_event, DEPLOYMENTS, indexers)

    assert {key: list(store) for key, store in indexers.indices["images"].items()} == {"shop-canary": ["app:2"]}
    assert seen == [{"facts": workload_facts(kopf.Body(deployment_body())), "canary": True, "spec": {},
                     "finalizers": ["example.com/keep"]}]
    assert "managedFields" not in raw_event["object"]["metadata"] and "status" not in raw_event["object"]


def test_through_kopfs_processing_a_kind_not_shed_keeps_its_body_for_its_handlers():
    registry = kopf.OperatorRegistry()
    seen: list[Any] = []
    kopf.index("ballast.dev", "v1alpha1", "releasepolicies", registry=registry)(lambda name, **_: {name: True})
    kopf.on.event("ballast.dev", "v1alpha1", "releasepolicies", registry=registry)(
        lambda body, **_: seen.append(dict(body.spec)))
    policy = {"apiVersion": "ballast.dev/v1alpha1", "kind": "ReleasePolicy",
              "metadata": {"name": "p", "uid": "u-2", "managedFields": []}, "spec": {"mode": "Enforce"}}
    process(registry, {"type": None, "object": policy}, RELEASEPOLICIES, indexing.OperatorIndexers())
    assert seen == [{"mode": "Enforce"}] and "managedFields" in policy["metadata"]


def test_ownerships_index_keeps_spec_and_status_although_the_event_is_shed():
    body = {"apiVersion": "ballast.dev/v1alpha1", "kind": "ServiceOwnership",
            "metadata": {"name": "shop", "namespace": "shop", "uid": "u-3", "generation": 2, "managedFields": [{}]},
            "spec": {"owner": "payments"}, "status": {"observedGeneration": 2}}
    indexed = ownerships_by_namespace(body=kopf.Body(body), namespace="shop")
    shed(body)
    assert indexed["shop"]["spec"] == {"owner": "payments"} and indexed["shop"]["status"] == {"observedGeneration": 2}


def test_installing_twice_wraps_kopf_once():
    from ballast.controllers.shedding import shed_after_indexing
    installed = indexing.index_resource
    shed_after_indexing()
    assert indexing.index_resource is installed


def test_a_kopf_of_another_shape_is_left_alone_with_a_warning(monkeypatch, caplog):
    from kopf._core.intents import registries

    from ballast.controllers.shedding import shed_after_indexing
    original = indexing.index_resource.__wrapped__  # type: ignore[attr-defined]
    monkeypatch.setattr(indexing, "index_resource", original)
    monkeypatch.setattr(registries.OperatorRegistry, "__init__", lambda self: None)  # no _changing, no _spawning
    shed_after_indexing()
    assert indexing.index_resource is original
    assert "kopf's indexing has changed shape" in caplog.text


def test_through_kopfs_processing_a_listed_object_is_handled_while_other_kinds_are_still_listing():
    """kopf would park the worker here until the last object of every kind is indexed, holding its state;
    Ballast's handlers ask for nothing until then (controllers/toggles.py), so the worker goes on at once."""
    registry = kopf.OperatorRegistry()
    seen: list[str] = []

    @kopf.index("apps", "v1", "deployments", id="names", registry=registry)
    def names(name: str, **_: Any) -> dict[str, bool]:
        return {name: True}

    @kopf.on.event("apps", "v1", "deployments", registry=registry)
    def changed(name: str, **_: Any) -> None:
        seen.append(name)

    indexers = indexing.OperatorIndexers()
    indexers.ensure(registry._indexing.get_all_handlers())

    async def run() -> bool:
        operator_indexed = aiotoggles.ToggleSet(all)  # as kopf makes it, with the operator's class installed
        await operator_indexed.make_toggle(name="serviceownerships still listing")
        this_object = await operator_indexed.make_toggle(name="shop-canary")
        await asyncio.wait_for(processing.process_resource_event(
            lifecycle=lifecycles.all_at_once, indexers=indexers, registry=registry,
            settings=kopf.OperatorSettings(), memories=inventory.ResourceMemories(),
            memobase=ephemera.AnyMemo(kopf.Memo()), resource=DEPLOYMENTS,
            raw_event={"type": None, "object": deployment_body()}, event_queue=asyncio.Queue(),
            operator_indexed=operator_indexed, resource_indexed=this_object), 5)
        return operator_indexed.is_on()

    assert asyncio.run(run()) is False  # handled while the indexes are not filled
    assert seen == ["shop-canary"]
