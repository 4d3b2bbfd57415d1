"""Integration tests of the test harness itself, against the real local control plane.

Every other integration test trusts the harness: that custom resources work on
this kube-apiserver build, that the pod simulator makes Deployments Available
(or deliberately not), that simulated traffic reaches Prometheus with the error
ratio asked for, and that stopping the cluster kills exactly what it started.
One cluster serves the whole module; each test works in its own namespaces.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from prometheus_api_client import PrometheusConnect

from tests.harness import wait_for
from tests.harness.cluster import KUBERNETES_SERVICE_IP, LocalCluster, get_ok, start_or_skip
from tests.harness.processes import process_matches

TIMEOUT = 60.0


@pytest.fixture(scope="module")
def harness_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """This module's own cluster, not conftest's shared one: the last test stops it."""
    local = start_or_skip(tmp_path_factory.mktemp("cluster"))
    yield local
    local.stop()


@pytest.fixture(scope="module")
def harness_api(harness_cluster: LocalCluster) -> client.ApiClient:
    assert harness_cluster.info is not None
    return config.new_client_from_config(config_file=harness_cluster.info.kubeconfig)


@pytest.fixture
def make_namespace(harness_api: client.ApiClient) -> Iterator[Callable[[], str]]:
    core = client.CoreV1Api(harness_api)
    created: list[str] = []

    def make() -> str:
        name = f"harness-{uuid.uuid4().hex[:8]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        created.append(name)
        return name

    yield make
    for name in created:
        core.delete_namespace(name)


def deployment(name: str, replicas: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations or {}},
                "spec": {"containers": [{"name": "app", "image": "example.test/app:1"}]},
            },
        },
    }


def test_pods_can_reach_the_api_server_at_the_kubernetes_service(harness_cluster: LocalCluster,
                                                                  harness_api: client.ApiClient) -> None:
    """The `kubernetes` Service points at the host's address, where the API server answers with a
    certificate that names it: what a pod's in-cluster client needs (through kube-proxy on the node)."""
    info = harness_cluster.info
    assert info is not None
    if not info.host_address:
        pytest.skip("this machine has no default route, so no address pods could reach the API server at")
    core = client.CoreV1Api(harness_api)
    endpoints = wait_for(lambda: core.read_namespaced_endpoints("kubernetes", "default").subsets, TIMEOUT,
                         "the kubernetes Service never got an endpoint")
    [subset] = endpoints
    assert [address.ip for address in subset.addresses] == [info.host_address]
    assert [port.port for port in subset.ports] == [info.ports["apiserver"]]
    service = core.read_namespaced_service("kubernetes", "default")
    assert service.spec.cluster_ip == KUBERNETES_SERVICE_IP
    ca = Path(info.state_dir) / "pki" / "apiserver" / "apiserver.crt"
    for host in ("127.0.0.1", info.host_address):  # verified against the certificate's names
        assert get_ok(f"https://{host}:{info.ports['apiserver']}/readyz", token=info.token, cafile=ca)


def test_custom_resources_work(harness_api: client.ApiClient, make_namespace: Callable[[], str]) -> None:
    # A miscompiled apiserver (old vendored json-iterator under new Go) crashes on
    # the first custom resource it stores, so exercise create, update and list.
    extensions = client.ApiextensionsV1Api(harness_api)
    custom = client.CustomObjectsApi(harness_api)
    group, plural = "test.ballast.dev", "widgets"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    extensions.create_custom_resource_definition(crd)
    try:

        def established() -> bool:
            conditions = extensions.read_custom_resource_definition(f"{plural}.{group}").status.conditions
            return any(c.type == "Established" and c.status == "True" for c in conditions or [])

        wait_for(established, TIMEOUT, "CRD never became Established")
        ns = make_namespace()
        widget = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "w"}}
        widget["spec"] = {"size": 1}
        custom.create_namespaced_custom_object(group, "v1", ns, plural, widget)
        custom.patch_namespaced_custom_object(group, "v1", ns, plural, "w", {"spec": {"size": 3}})
        items = custom.list_namespaced_custom_object(group, "v1", ns, plural)["items"]
        assert [(w["metadata"]["name"], w["spec"]["size"]) for w in items] == [("w", 3)]

        invalid = {**widget, "metadata": {"name": "zero"}, "spec": {"size": 0}}
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(group, "v1", ns, plural, invalid)
        assert refused.value.status == 422
    finally:
        extensions.delete_custom_resource_definition(f"{plural}.{group}")


def test_pod_simulator_readiness(harness_api: client.ApiClient, make_namespace: Callable[[], str]) -> None:
    apps, core = client.AppsV1Api(harness_api), client.CoreV1Api(harness_api)
    ns = make_namespace()
    apps.create_namespaced_deployment(ns, deployment("good", 3))
    apps.create_namespaced_deployment(ns, deployment("broken", 2, {"sim.ballast.dev/never-ready": "true"}))

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("good", ns).status
        conditions = {c.type: c.status for c in status.conditions or []}
        return status.ready_replicas == 3 and conditions.get("Available") == "True"

    wait_for(available, TIMEOUT, "3-replica Deployment never became Available")

    def broken_pods_running() -> list[client.V1Pod]:
        pods = core.list_namespaced_pod(ns, label_selector="app=broken").items
        return pods if len(pods) == 2 and all(p.status.phase == "Running" for p in pods) else []

    for pod in wait_for(broken_pods_running, TIMEOUT, "never-ready pods never ran"):
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
        assert pod.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert not apps.read_namespaced_deployment_status("broken", ns).status.ready_replicas

    # Garbage collection in kube-controller-manager removes ReplicaSets and pods.
    apps.delete_namespaced_deployment("good", ns, propagation_policy="Background")
    wait_for(
        lambda: not core.list_namespaced_pod(ns, label_selector="app=good").items,
        TIMEOUT,
        "pods of a deleted Deployment were not garbage-collected",
    )


def test_traffic_reaches_prometheus(
    harness_cluster: LocalCluster, harness_api: client.ApiClient, make_namespace: Callable[[], str]
) -> None:
    assert harness_cluster.info is not None
    apps = client.AppsV1Api(harness_api)
    prometheus = PrometheusConnect(harness_cluster.info.prometheus_url, disable_ssl=True)
    failing, healthy = make_namespace(), make_namespace()
    apps.create_namespaced_deployment(failing, deployment("app", 3, {"sim.ballast.dev/error-ratio": "0.2"}))
    apps.create_namespaced_deployment(healthy, deployment("app", 3))

    def value(query: str) -> float | None:
        result = prometheus.custom_query(query)
        return float(result[0]["value"][1]) if result else None

    def error_ratio() -> float | None:
        ratio = value(
            f'sum(rate(http_requests_total{{namespace="{failing}",code="500"}}[10s]))'
            f' / sum(rate(http_requests_total{{namespace="{failing}"}}[10s]))'
        )
        return ratio if ratio is not None and 0.1 <= ratio <= 0.3 else None

    wait_for(error_ratio, TIMEOUT, "error ratio 0.2 never showed in Prometheus")
    selector = f'namespace="{healthy}"'
    wait_for(
        lambda: (value(f"sum(rate(http_requests_total{{{selector}}}[10s]))") or 0) > 0,
        TIMEOUT,
        "no requests for the healthy Deployment in Prometheus",
    )
    # The 500 series exists from the first tick, so "no errors" is a 0, not an empty result.
    assert value(f'sum(http_requests_total{{{selector},code="500"}})') == 0


def test_service_traffic_is_shared_by_its_pods(
    harness_cluster: LocalCluster, harness_api: client.ApiClient, make_namespace: Callable[[], str]
) -> None:
    """With sim.ballast.dev/service-rps, adding pods splits the users instead of adding more of them."""
    assert harness_cluster.info is not None
    apps = client.AppsV1Api(harness_api)
    prometheus = PrometheusConnect(harness_cluster.info.prometheus_url, disable_ssl=True)
    namespace = make_namespace()
    shared = {"sim.ballast.dev/service": "shop", "sim.ballast.dev/service-rps": "60"}
    apps.create_namespaced_deployment(namespace, deployment("shop", 2, shared))
    apps.create_namespaced_deployment(namespace, deployment("shop-extra", 1, shared))

    def rates() -> dict[str, float]:
        result = prometheus.custom_query(f'sum by (pod) (rate(http_requests_total{{namespace="{namespace}"}}[5s]))')
        return {r["metric"]["pod"]: float(r["value"][1]) for r in result}

    def settled() -> dict[str, float] | None:
        current = rates()
        if len(current) == 3 and all(v > 0 for v in current.values()) and 50 <= sum(current.values()) <= 70:
            return current
        return None

    per_pod = wait_for(settled, TIMEOUT, "three pods never shared about 60 req/s")
    assert all(12 <= rate <= 28 for rate in per_pod.values()), per_pod  # about 20 each, not 60 each


def test_prometheus_rules_targets_and_restart(harness_cluster: LocalCluster) -> None:
    assert harness_cluster.info is not None
    prometheus = PrometheusConnect(harness_cluster.info.prometheus_url, disable_ssl=True)
    rules = "groups:\n- name: harness\n  rules:\n  - alert: AlwaysFiring\n    expr: vector(1)\n"
    harness_cluster.write_prometheus_rules("harness", rules)
    # trafficsim scraped a second time under another job name stands in for the operator.
    harness_cluster.add_scrape_target("second", f"127.0.0.1:{harness_cluster.info.ports['trafficsim']}")
    wait_for(
        lambda: prometheus.custom_query('up{job="second"} == 1'),
        TIMEOUT,
        "added scrape target never came up",
    )

    before_stop = time.time()
    harness_cluster.stop_prometheus()
    assert get_ok(f"{harness_cluster.info.prometheus_url}/-/ready") is None
    harness_cluster.start_prometheus()
    # Rules, targets and the data scraped before the stop survive the restart.
    wait_for(
        lambda: prometheus.custom_query('ALERTS{alertname="AlwaysFiring"}'),
        TIMEOUT,
        "rule not evaluated after restart",
    )
    assert prometheus.custom_query('up{job="second"}', params={"time": before_stop})


def test_stop_kills_exactly_what_it_started(harness_cluster: LocalCluster) -> None:
    # Runs last in this module: it stops the shared cluster (the fixture's stop is then a no-op).
    assert harness_cluster.info is not None
    started = {name: (pid, harness_cluster.info.argv[name]) for name, pid in harness_cluster.info.pids.items()}
    # A recorded pid now running something else (pid reuse) must survive stop().
    bystander = subprocess.Popen(["sleep", "60"])
    harness_cluster.info.pids["reused"], harness_cluster.info.argv["reused"] = bystander.pid, ["not", "sleep"]
    try:
        assert harness_cluster.stop() is True
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert not [name for name, (pid, argv) in started.items() if process_matches(pid, argv)]
    assert not (Path(harness_cluster.state_dir) / "cluster.json").exists()
    assert harness_cluster.stop() is False
