"""What tests on the real node share: the demo app as real pods, its image, Services, Prometheus queries."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
import requests

from tests.harness import images, wait_for
from tests.harness.node import REAL_POD_PLACEMENT, LocalNode

DEMO_PORT = 8080
STARTUP_SECONDS = 2
"""The demo app's readiness delay in these tests: real, and short enough to keep the suite lean."""


def wait_for_default_service_account(core: kubernetes.client.CoreV1Api, namespace: str) -> None:
    """ServiceAccount admission refuses pods until the namespace's default ServiceAccount has its token."""

    def has_token() -> bool:
        accounts = core.list_namespaced_service_account(namespace, field_selector="metadata.name=default").items
        return bool(accounts and accounts[0].secrets)

    wait_for(has_token, 30, "the default ServiceAccount has no token")


def create_ready_pod(core: kubernetes.client.CoreV1Api, namespace: str, pod: dict[str, Any],
                     timeout: float = 90.0) -> tuple[kubernetes.client.V1Pod, float]:
    """Create `pod` and wait until it is Ready; returns the pod and the seconds it took."""
    wait_for_default_service_account(core, namespace)
    started = time.monotonic()
    core.create_namespaced_pod(namespace, pod)
    name = pod["metadata"]["name"]

    def ready() -> kubernetes.client.V1Pod | None:
        current = core.read_namespaced_pod(name, namespace)
        conditions = current.status.conditions or []
        return current if any(c.type == "Ready" and c.status == "True" for c in conditions) else None

    try:
        ready_pod = wait_for(ready, timeout, f"pod {name} not Ready")
    except TimeoutError as exc:
        current = core.read_namespaced_pod(name, namespace)
        events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        raise AssertionError(f"{exc}: node {current.spec.node_name!r}, phase {current.status.phase}, "
                             f"conditions {current.status.conditions}, events "
                             f"{[(e.reason, e.message) for e in events]}") from None
    return ready_pod, time.monotonic() - started


def with_progress(pytestconfig: pytest.Config, build: Callable[[], Any]) -> Any:
    """Run an image build with pytest's capture off, so a first build's progress and expected time show."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        return build()


def import_image(node: LocalNode, pytestconfig: pytest.Config, archive: Callable[[], Any]) -> float:
    """Build (or find cached) an image archive and import it into the node's containerd; seconds taken."""
    started = time.monotonic()
    try:
        path = with_progress(pytestconfig, archive)
    except images.ImageBuildError as exc:
        pytest.fail(str(exc))
    images.import_archive(node.ctr, path)
    return time.monotonic() - started


def demo_container(version: str = "1", error_ratio: float = 0.0, latency_ms: int = 0,
                   startup_seconds: float = STARTUP_SECONDS, image: str = images.DEMO_APP_IMAGE) -> dict[str, Any]:
    return {
        "name": "app",
        "image": image,
        # IfNotPresent: the imported images are used, and a name nobody imported is pulled (and fails).
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": "VERSION", "value": version}, {"name": "ERROR_RATIO", "value": str(error_ratio)},
                {"name": "LATENCY_MS", "value": str(latency_ms)},
                {"name": "STARTUP_SECONDS", "value": str(startup_seconds)}],
        "ports": [{"name": "http", "containerPort": DEMO_PORT}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1,
                           "failureThreshold": 1},
    }


def demo_pod_template(labels: dict[str, str], **container: Any) -> dict[str, Any]:
    """A pod template of the demo app on the real node, scraped by Prometheus (the kind demo's annotations)."""
    return {
        "metadata": {"labels": labels,
                     "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(DEMO_PORT)}},
        # Longer than the app's drain after SIGTERM (DRAIN_SECONDS, 3 s by default).
        "spec": {**REAL_POD_PLACEMENT, "terminationGracePeriodSeconds": 10,
                 "containers": [demo_container(**container)]},
    }


def service(core: kubernetes.client.CoreV1Api, namespace: str, name: str, selector: dict[str, str]) -> str:
    """Create a ClusterIP Service on port 80 to the demo app; its URL."""
    created = core.create_namespaced_service(namespace, {
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": DEMO_PORT}]},
    })
    return f"http://{created.spec.cluster_ip}"


def serving(url: str, endpoints: Callable[[], int], wanted: int, timeout: float = 60) -> None:
    """Wait until the Service has `wanted` ready endpoints and kube-proxy routes its ClusterIP (asynchronously)."""
    def routed() -> bool:
        if endpoints() < wanted:
            return False
        try:
            return requests.get(f"{url}/healthz", timeout=1).status_code == 200  # not counted as traffic
        except requests.RequestException:
            return False
    wait_for(routed, timeout, f"{url} never routed to {wanted} ready pod(s)", interval=0.2)


def ready_endpoints(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> int:
    try:
        subsets = core.read_namespaced_endpoints(name, namespace).subsets or []
    except kubernetes.client.ApiException:
        return 0
    return sum(len(s.addresses or []) for s in subsets)


def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    return response.json()["data"]["result"]


def scalar(prometheus_url: str, promql: str) -> float | None:
    """The value of a query with at most one series (None when it has none)."""
    result = query(prometheus_url, promql)
    assert len(result) <= 1, result
    return float(result[0]["value"][1]) if result else None
