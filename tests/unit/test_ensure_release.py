"""One change, one Release, even while the operator's index of Releases lags behind the API server.

``ensure_release`` reads the API server between looking at the index and creating the Release. It used to
decide "none of ours is open" from the index before those reads and "which names are taken" after them:
a Release created by the pass just before, which the index showed only by then, pushed the new one to the
next free name (``-2``), and two Releases fought over one change (seen under load in the demo, the real-pod
benchmark and the scale benchmark). The Kubernetes calls are replaced here by a recorder, because the
point is the order of the operator's own reads; the integration suite runs the real API server.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from ballast.api.common import RiskTier
from ballast.api.releasepolicy import ReleasePolicySpec
from ballast.api.revisions import template_hash
from ballast.api.vocabulary import PENDING_ANNOTATION
from ballast.controllers import releases
from ballast.release.record import Change, release_body, release_name

TEMPLATE = {"metadata": {"labels": {"app": "checkout"}}, "spec": {"containers": [{"name": "app", "image": "app:2"}]}}
DEPLOYMENT = {"metadata": {"name": "checkout", "namespace": "shop", "uid": "uid-1", "labels": {"app": "checkout"},
                           "annotations": {PENDING_ANNOTATION: template_hash(TEMPLATE)}},
              "spec": {"template": TEMPLATE, "selector": {"matchLabels": {"app": "checkout"}}}}
FIRST = release_name("checkout", template_hash(TEMPLATE), 1)


class LaggingIndex:
    """The namespace's Releases as kopf's index shows them: the Release an earlier pass created appears only
    once the pass under test has started its reads of the API server."""

    def __init__(self) -> None:
        self.shown: list[dict[str, Any]] = []

    def get(self, namespace: str, default: Any = None) -> list[dict[str, Any]]:
        return self.shown

    def catch_up(self) -> None:
        first = release_body(Change(DEPLOYMENT, None, "", ReleasePolicySpec(), service="checkout", team="payments",
                                    tier=RiskTier.MEDIUM), FIRST)
        first["status"] = {}
        self.shown.append(first)


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], LaggingIndex]:
    index, names = LaggingIndex(), []

    def read_stable_revision(deployment: Any, excluding: str | None = None) -> None:
        index.catch_up()  # the watch event of the Release created just before arrives during this read
        return None

    class CustomObjects:
        def __init__(self, *_: Any) -> None:
            pass

        def create_namespaced_custom_object(self, group: str, version: str, namespace: str, plural: str,
                                            body: dict[str, Any]) -> None:
            names.append(body["metadata"]["name"])

    monkeypatch.setattr(releases.deployments, "read_raw", lambda namespace, name: DEPLOYMENT)
    monkeypatch.setattr(releases.deployments, "read_stable_revision", read_stable_revision)
    monkeypatch.setattr(releases.kubernetes.client, "CustomObjectsApi", CustomObjects)
    monkeypatch.setattr(releases, "api_client", lambda: None)
    return names, index


def test_a_release_the_index_shows_only_midway_is_not_doubled(created: tuple[list[str], LaggingIndex]) -> None:
    names, index = created
    runtime = SimpleNamespace(
        releases=index, governing_policy=lambda namespace: SimpleNamespace(name="default",
                                                                            effective=ReleasePolicySpec()),
        named_ownerships=lambda namespace: [], release_reconciler=SimpleNamespace(request=lambda key: None))
    asyncio.run(releases.ensure_release(runtime, "shop", "checkout"))  # type: ignore[arg-type]
    assert names == []  # before: ["checkout-<revision>-2"], a second Release of the same change
