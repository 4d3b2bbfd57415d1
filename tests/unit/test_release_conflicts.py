"""A release pass that loses a race plans again on fresh data and acts on nothing meanwhile.

The Kubernetes calls of the release engine's shell are replaced by a small fake that keeps objects and
resourceVersions and refuses a stale status write with 409, as the API server does. (The integration
tests run the same engine against a real API server.)
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf
import kubernetes
import pytest

from ballast.api.revisions import template_hash
from ballast.controllers import releases, startup
from ballast.controllers.runtime import Options

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "web:2"}]}}
KEY = ("shop", "web-1")


class Recorder:
    def __init__(self) -> None:
        self.keys: list[Any] = []

        self.delays: list[float | None] = []

    def request(self, key: Any, after: float | None = None) -> None:
        self.keys.append(key)
        self.delays.append(after)


class FakeKube:
    """The few calls a release pass makes, over objects kept here."""

    def __init__(self) -> None:
        self.release: dict[str, Any] = {
            "apiVersion": "ballast.dev/v1alpha1", "kind": "Release",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "release-uid", "resourceVersion": "1",
                         "generation": 1, "creationTimestamp": "2026-11-24T00:00:00+00:00",
                         "labels": {"app.kubernetes.io/managed-by": "ballast"},
                         "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "deployment-uid"}]},
            "spec": {"deployment": "web", "tier": "low", "toRevision": template_hash(TEMPLATE),
                     "fromRevision": "stable", "steps": [10, 50]},
        }
        self.deployment: dict[str, Any] = {
            "metadata": {"name": "web", "namespace": "shop", "uid": "deployment-uid", "resourceVersion": "7",
                         "generation": 2, "annotations": {"ballast.dev/pending-revision": template_hash(TEMPLATE)}},
            "spec": {"replicas": 10, "paused": True, "selector": {"matchLabels": {"app": "web"}},
                     "template": TEMPLATE},
            "status": {"observedGeneration": 2, "replicas": 10, "updatedReplicas": 0, "availableReplicas": 10},
        }
        self.written: list[dict[str, Any]] = []
        self.canaries: list[dict[str, Any]] = []
        self.interfere_after_read: Any = None
        """Called after the pass read the Release, as if someone wrote between the read and the write."""

    def read_release(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = copy.deepcopy(self.release)
        if self.interfere_after_read is not None:
            self.interfere_after_read()
            self.interfere_after_read = None
        return body

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.deployment) if name == "web" else None

    def update_status(self, ref: Any, current: Any, owned: dict[str, Any], resource_version: str) -> bool:
        if resource_version != self.release["metadata"]["resourceVersion"]:
            raise kubernetes.client.ApiException(status=409, reason="Conflict")
        self.release["status"] = {**(self.release.get("status") or {}), **owned}
        self.release["metadata"]["resourceVersion"] = str(int(resource_version) + 1)
        self.written.append(owned)
        return True

    def someone_writes_the_release(self) -> None:
        self.release["metadata"]["resourceVersion"] = str(int(self.release["metadata"]["resourceVersion"]) + 1)


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    fake = FakeKube()
    monkeypatch.setattr(releases, "_read_release", fake.read_release)
    monkeypatch.setattr(releases, "update_status", fake.update_status)
    monkeypatch.setattr(releases.deployments, "read_raw", fake.read_deployment)
    monkeypatch.setattr(releases.deployments, "ensure_canary", fake.canaries.append)
    monkeypatch.setattr(kopf, "event", lambda *args, **kwargs: None)
    return fake


def one_pass() -> tuple[Recorder, Recorder]:
    state = startup.build_runtime(Options(), namespaces={}, workloads={}, ownerships={}, policies={}, releases={})
    state.release_reconciler = Recorder()  # type: ignore[assignment]
    state.ownership_reconciler = Recorder()  # type: ignore[assignment]
    asyncio.run(releases.reconcile_release(state, KEY))
    return state.release_reconciler, state.ownership_reconciler  # type: ignore[return-value]


def test_a_status_write_that_loses_the_race_plans_again_and_acts_on_nothing(kube):
    kube.interfere_after_read = kube.someone_writes_the_release
    again, _ = one_pass()
    assert (again.keys, again.delays) == ([KEY], [None])  # planned again at once, on what the API server holds
    assert kube.written == [] and kube.canaries == []  # no action without its status written first

    again, _ = one_pass()  # the next pass reads the fresh resourceVersion and goes ahead
    assert [w["phase"] for w in kube.written] == ["Progressing"]
    assert [c["spec"]["replicas"] for c in kube.canaries] == [1]
    assert {(c["type"], c["status"]) for c in kube.written[0]["conditions"]} == {("Progressing", "True"),
                                                                                 ("Degraded", "False")}
    assert again.keys == [KEY] and again.delays[0] is not None  # only the step's timed re-check


def test_a_deployment_changed_since_the_plan_is_not_acted_on(kube, monkeypatch):
    real_read = kube.read_deployment
    reads = []

    def template_changes_after_the_plan(namespace: str, name: str) -> dict[str, Any] | None:
        body = real_read(namespace, name)
        reads.append(name)
        if body is not None and reads.count("web") > 1:  # the action's own read
            body["spec"]["template"] = {**TEMPLATE, "spec": {"containers": [{"name": "app", "image": "web:3"}]}}
        return body

    monkeypatch.setattr(releases.deployments, "read_raw", template_changes_after_the_plan)
    again, _ = one_pass()
    assert [w["phase"] for w in kube.written] == ["Progressing"]  # written ahead, as always
    assert kube.canaries == []  # but the canary of a template no longer pending is never made
    assert (again.keys, again.delays) == ([KEY], [None])
