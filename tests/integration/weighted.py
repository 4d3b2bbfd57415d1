"""What the Gateway data plane's test and the traffic split benchmark share: two versions of the demo app
on real pods, each behind its own Service, an HTTPRoute between them, and the split measured by what
answered (tests/integration/test_gateway_dataplane.py, benchmarks/traffic_split.py)."""

from __future__ import annotations

import time

import kubernetes

from tests.harness import wait_for
from tests.harness.gateway import GROUP, PLURAL, VERSION, GatewayController
from tests.harness.loadgen import LoadGenerator
from tests.integration.realpods import demo_pod_template, ready_endpoints

STABLE, CANARY = "shop", "shop-canary"
ROUTE = "shop"


def deploy_versions(core: kubernetes.client.CoreV1Api, apps: kubernetes.client.AppsV1Api, namespace: str,
                    versions: dict[str, tuple[str, int]], timeout: float = 120) -> None:
    """Per name, a Deployment of the demo app (version, replicas) on real pods and a Service of the same
    name on port 80; returns once every Service has all its pods as ready endpoints."""
    for name, (version, replicas) in versions.items():
        labels = {"app": name}
        apps.create_namespaced_deployment(namespace, {
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": demo_pod_template(labels, version=version)}})
        core.create_namespaced_service(namespace, {"metadata": {"name": name}, "spec": {
            "selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    for name, (_, replicas) in versions.items():
        wait_for(lambda n=name, r=replicas: ready_endpoints(core, namespace, n) == r, timeout,
                 f"{namespace}/{name} never had {replicas} ready endpoint(s)")


def set_weights(custom: kubernetes.client.CustomObjectsApi, namespace: str, stable: int, canary: int) -> float:
    """Create or update the HTTPRoute `ROUTE` with these weights (stable, canary); when it was written
    (time.monotonic())."""
    spec = {"parentRefs": [{"name": "edge"}], "rules": [{"backendRefs": [
        {"name": STABLE, "port": 80, "weight": stable}, {"name": CANARY, "port": 80, "weight": canary}]}]}
    written = time.monotonic()
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute", "metadata": {"name": ROUTE}, "spec": spec})
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, ROUTE, {"spec": spec})
    return written


def served(gateway: GatewayController, namespace: str, stable: tuple[int, int], canary: tuple[int, int],
           timeout: float) -> float:
    """Wait until HAProxy serves the route with these (weight, ready endpoints) per Service; since when
    (time.monotonic())."""
    wanted = {f"{namespace}/{STABLE}:80": stable, f"{namespace}/{CANARY}:80": canary}
    applied = gateway.wait_applied(lambda _: gateway.weights(f"{namespace}/{ROUTE}") == wanted, timeout,
                                   f"HAProxy never served {wanted}")
    return applied.at


def measure(url: str, requests: int, rps: float) -> LoadGenerator:
    """Send at least `requests` requests at `rps` through `url`; the finished load generator (read its
    versions() and counts())."""
    load = LoadGenerator(f"{url}/", rps=rps, workers=32, count_versions=True)
    with load:
        wait_for(lambda: len(load.answers()) >= requests, requests / rps * 4 + 30,
                 f"{requests} requests to {url} were never all answered")
    return load
