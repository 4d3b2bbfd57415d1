"""The table of which watched events wake which reconcilers, with which keys."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from ballast.controllers.runtime import Acting
from ballast.controllers.triggers import TRIGGERS, every_key, trigger
from ballast.policy.workloads import WorkloadSummary


class Recorder:
    def __init__(self) -> None:
        self.keys: list[Any] = []

    def request(self, key: Any, after: float | None = None) -> None:
        self.keys.append(key)


def runtime(releases: dict[str, list[dict[str, Any]]] | None = None, ownerships: dict[str, list] | None = None,
            workloads: dict[str, list[WorkloadSummary]] | None = None, leading: bool = True) -> Any:
    return SimpleNamespace(ownership_reconciler=Recorder(), policy_reconciler=Recorder(),
                           release_reconciler=Recorder(), releases=releases or {}, ownerships=ownerships or {},
                           workloads=workloads or {}, acting=Acting(leading), indexes_filled=filled(),
                           handler_called=asyncio.Event(), handler_context=None, seen_facts={}, audit_inputs=0)


def filled() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


def woken(state: Any) -> dict[str, list[Any]]:
    return {name: recorder.keys for name, recorder in (("ownerships", state.ownership_reconciler),
                                                       ("policies", state.policy_reconciler),
                                                       ("releases", state.release_reconciler)) if recorder.keys}


def body(name: str, namespace: str | None = "shop", labels: dict | None = None,
         annotations: dict | None = None) -> dict:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                         "annotations": annotations or {}}}


def release(name: str, deployment: str, phase: str | None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop"}, "spec": {"deployment": deployment},
            "status": {"phase": phase} if phase else {}}


def test_every_watched_resource_has_an_entry():
    assert set(TRIGGERS) == {"deployments", "statefulsets", "daemonsets", "serviceownerships", "releases",
                             "releasepolicies", "namespaces"}


def test_a_deployment_wakes_its_ownerships_the_policies_and_its_unfinished_releases():
    state = runtime({"shop": [release("web-1", "web", "Promoted"), release("web-2", "web", "Progressing"),
                              release("web-3", "web", None), release("api-1", "api", "Pending")]})
    trigger(state, "deployments", body("web"))
    assert woken(state) == {"ownerships": ["shop"], "policies": ["all"],
                            "releases": [("shop", "web-2"), ("shop", "web-3")]}


def test_a_pending_change_is_recorded_first():
    state = runtime()
    trigger(state, "deployments", body("web", annotations={"ballast.dev/pending-revision": "abc"}))
    assert woken(state)["releases"] == [("deployment", "shop", "web")]


def test_a_canary_wakes_only_its_release_among_releases():
    state = runtime({"shop": [release("web-1", "web-canary", "Progressing")]})
    trigger(state, "deployments", body("web-canary", labels={"ballast.dev/track": "canary"},
                                       annotations={"ballast.dev/release": "web-1"}))
    assert woken(state)["releases"] == [("shop", "web-1")]
    unlabelled = runtime()
    trigger(unlabelled, "deployments", body("web-canary", labels={"ballast.dev/track": "canary"}))
    assert "releases" not in woken(unlabelled)


@pytest.mark.parametrize("plural", ["statefulsets", "daemonsets"])
def test_other_workloads_wake_the_policy_audit_only(plural):
    state = runtime()
    trigger(state, plural, body("db"))
    assert woken(state) == {"policies": ["all"]}


def forget_woken(state: Any) -> None:
    for recorder in (state.ownership_reconciler, state.policy_reconciler, state.release_reconciler):
        recorder.keys.clear()


def test_a_status_write_of_a_deployment_wakes_only_its_releases():
    # kube-controller-manager writes a Deployment's status at every rollout step: the ownership and policy
    # passes read its labels and annotations only, the release passes follow the rollout.
    state = runtime({"shop": [release("web-2", "web", "Progressing")]})
    listed = body("web", labels={"app": "web"}, annotations={"ballast.dev/owner": "payments"})
    trigger(state, "deployments", listed, None)
    forget_woken(state)
    trigger(state, "deployments", {**listed, "status": {"readyReplicas": 3}}, "MODIFIED")
    assert woken(state) == {"releases": [("shop", "web-2")]}


@pytest.mark.parametrize("metadata", [
    {"labels": {"app": "web", "tier": "edge"}},
    {"annotations": {"ballast.dev/owner": "search"}},
    {"ownerReferences": [{"uid": "u-1"}]},
], ids=["labels", "annotations", "owners"])
def test_a_change_of_what_the_passes_read_wakes_them_again(metadata):
    state = runtime()
    listed = body("web", labels={"app": "web"}, annotations={"ballast.dev/owner": "payments"})
    trigger(state, "deployments", listed, None)
    forget_woken(state)
    trigger(state, "deployments", {"metadata": {**listed["metadata"], **metadata}}, "MODIFIED")
    assert woken(state) == {"ownerships": ["shop"], "policies": ["all"]}


def test_a_deleted_and_recreated_workload_wakes_the_passes_each_time():
    state = runtime()
    for event_type in (None, "DELETED", "ADDED"):
        trigger(state, "statefulsets", body("db"), event_type)
    assert woken(state) == {"policies": ["all", "all", "all"]}
    assert state.seen_facts  # the recreated one is remembered again


def test_a_status_write_of_a_policy_wakes_nothing_and_a_spec_change_wakes_every_namespace():
    state = runtime(ownerships={"shop": [], "search": []})
    policy = {"metadata": {"name": "default", "generation": 1}}
    trigger(state, "releasepolicies", policy, None)
    forget_woken(state)
    trigger(state, "releasepolicies", {**policy, "status": {"violationCount": 0}}, "MODIFIED")
    assert woken(state) == {}
    trigger(state, "releasepolicies", {"metadata": {"name": "default", "generation": 2}}, "MODIFIED")
    assert woken(state) == {"ownerships": ["shop", "search"], "policies": ["all"]}


def test_a_follower_remembers_what_it_saw_so_that_leading_starts_from_its_indexes():
    state = runtime(leading=False)
    trigger(state, "deployments", body("web", labels={"app": "web"}), None)
    state.acting.lead()
    trigger(state, "deployments", body("web", labels={"app": "web"}), "MODIFIED")
    assert woken(state) == {}  # taking the lead passes over every key anyway (every_key)
    trigger(state, "deployments", body("web", labels={"app": "api"}), "MODIFIED")
    assert woken(state) == {"ownerships": ["shop"], "policies": ["all"]}


def test_ballast_objects():
    state = runtime(ownerships={"shop": [], "search": []})
    trigger(state, "serviceownerships", body("checkout"))
    trigger(state, "releases", body("web-1"))
    trigger(state, "releasepolicies", body("default", namespace=None))
    trigger(state, "namespaces", body("blog", namespace=None))
    assert woken(state) == {"ownerships": ["shop", "shop", "shop", "search", "blog"], "policies": ["all", "all"],
                            "releases": [("shop", "web-1")]}


def test_the_table_is_the_only_place_events_are_watched():
    import kopf

    import ballast.controllers  # noqa: F401  (registers every handler)

    watching = kopf.get_default_registry()._watching
    assert {selector.any_name for selector in watching.get_all_selectors()} == set(TRIGGERS)
    assert {handler.fn.__module__ for handler in watching.get_all_handlers()} == {"ballast.controllers.triggers"}


def test_before_the_indexes_are_filled_events_ask_for_nothing_but_are_remembered():
    state = runtime({"shop": [release("web-2", "web", "Progressing")]})
    state.indexes_filled.clear()
    for plural in TRIGGERS:
        trigger(state, plural, body("web"))
    assert woken(state) == {}  # the pass over every key once they are filled covers these objects
    assert state.handler_called.is_set() and state.handler_context is not None
    assert ("deployments", "shop", "web") in state.seen_facts and state.audit_inputs == len(TRIGGERS)


def test_a_follower_keeps_the_handler_context_and_wakes_nothing():
    state = runtime({"shop": [release("web-2", "web", "Progressing")]}, leading=False)
    for plural in TRIGGERS:
        trigger(state, plural, body("web"))
    assert state.handler_called.is_set()
    assert woken(state) == {}


def test_taking_the_lead_wakes_every_key_the_indexes_hold():
    pending = {"ballast.dev/pending-revision": "abc"}
    state = runtime(
        releases={"shop": [release("web-1", "web", "Promoted"), release("web-2", "web", "Progressing")]},
        ownerships={"shop": [{}], "search": [{}]},
        workloads={"shop": [
            WorkloadSummary(namespace="shop", kind="Deployment", name="web", annotations=pending),
            WorkloadSummary(namespace="shop", kind="Deployment", name="api"),
            WorkloadSummary(namespace="shop", kind="StatefulSet", name="db", annotations=pending),
        ]})
    every_key(state)
    assert woken(state) == {"ownerships": ["shop", "search"], "policies": ["all"],
                            "releases": [("shop", "web-2"), ("deployment", "shop", "web")]}


def test_resigning_waits_for_the_pass_under_way_and_no_pass_starts_after():
    async def scenario() -> list[str]:
        acting, seen = Acting(), []
        release_pass = asyncio.Event()

        async def a_pass(name: str) -> None:
            async with acting.acting() as leading:
                if leading:
                    seen.append(f"{name} starts")
                    await release_pass.wait()
                    seen.append(f"{name} ends")

        under_way = asyncio.create_task(a_pass("first"))
        await asyncio.sleep(0)
        resigned = asyncio.create_task(acting.resign())
        await asyncio.sleep(0)
        await a_pass("second")  # asked after resigning: never runs
        assert not resigned.done()
        release_pass.set()
        await resigned
        seen.append("resigned")
        await under_way
        return seen
    assert asyncio.run(scenario()) == ["first starts", "first ends", "resigned"]


def test_the_releases_index_keeps_only_the_status_fields_read_from_it():
    from ballast.controllers.indexes import releases_by_namespace
    body = {"apiVersion": "ballast.dev/v1alpha1", "kind": "Release",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1", "labels": {"a": "b"}},
            "spec": {"deployment": "web"},
            "status": {"phase": "Promoted", "finishedAt": "2026-11-24T01:00:00Z", "step": 2,
                       "analyses": [{"step": 0, "verdict": "Pass"}], "conditions": [{"type": "Succeeded"}]}}
    snap = releases_by_namespace(body=body, namespace="shop")["shop"]
    assert snap["status"] == {"phase": "Promoted", "finishedAt": "2026-11-24T01:00:00Z"}
    assert snap["spec"] == {"deployment": "web"} and snap["metadata"]["labels"] == {"a": "b"}
