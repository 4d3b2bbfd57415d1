"""A real data plane honours HTTPRoute weights: real requests through HAProxy to real pods (issue 13, item 3).

Two Deployments of the demo app on the real node, stable (version v1, 2 pods) and canary (v2, 1 pod),
each behind its own Service, and one HTTPRoute whose weights the test sets: the simulated Gateway
controller (tests/harness/gateway.py) serves it through HAProxy, and the load generator counts which
version answered each request. With 2 stable pods and 1 canary pod a replica split would give the
canary a third of the traffic; the route's weights must win.

Tolerances are exact binomial ranges (tests/harness/binomial.py): a data plane that honours a weight p
lands outside the 99.9 % range of Binomial(n, p) once in a thousand runs, while a wrong split (a third,
or the previous weights) lands far outside it.

Run under the real-node lock: `flock /tmp/ballast-node.lock pytest tests/integration/test_gateway_dataplane.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from tests.harness import images, require_binary, wait_for
from tests.harness.binomial import acceptance_range
from tests.harness.gateway import GatewayController, install_httproute_crd
from tests.harness.loadgen import LoadGenerator, errors
from tests.harness.node import LocalNode
from tests.harness.processes import process_matches
from tests.integration.realpods import import_image, ready_endpoints
from tests.integration.weighted import CANARY, STABLE, deploy_versions, measure, served, set_weights

REQUESTS = 1000
"""Per measured split: at 90/10 the 99.9 % range is 70-132 canary answers (a replica split gives ~333)."""
RPS = 150
CONFIDENCE = 0.999
APPLY_DEADLINE = 10.0
"""Seconds from a route's change to HAProxy serving it: a watch event, a render and a hot reload."""


@pytest.fixture(scope="module")
def shop(real_node: LocalNode, pytestconfig: pytest.Config, local_cluster, api_client) -> Iterator[str]:
    """A namespace with the demo app as two Deployments on real pods, v1 (2 pods) and v2 (1 pod), each
    behind a Service on port 80, and the HTTPRoute CRD installed."""
    import_image(real_node, pytestconfig, images.demo_app_archive)
    install_httproute_crd(local_cluster.info.kubeconfig)
    core, apps = kubernetes.client.CoreV1Api(api_client), kubernetes.client.AppsV1Api(api_client)
    namespace = f"gw-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    try:
        deploy_versions(core, apps, namespace, {STABLE: ("v1", 2), CANARY: ("v2", 1)})
        yield namespace
    finally:
        core.delete_namespace(namespace)


@pytest.fixture
def gateway(cluster, tmp_path: Path) -> Iterator[GatewayController]:
    controller = GatewayController(cluster.kubeconfig, tmp_path / "gateway",
                                   haproxy=require_binary("haproxy", "haproxy"))
    with controller:
        yield controller
    assert not controller.errors, controller.errors


def measure_versions(url: str, requests: int = REQUESTS) -> dict[str, int]:
    return measure(url, requests, RPS).versions()


def assert_share(by_version: dict[str, int], version: str, share: float) -> None:
    n = sum(by_version.values())
    low, high = acceptance_range(n, share, CONFIDENCE)
    assert low <= by_version.get(version, 0) <= high, (
        f"{version} answered {by_version.get(version, 0)} of {n} requests; a data plane honouring {share:.0%} "
        f"answers {low}-{high} ({CONFIDENCE:.1%} of runs): {by_version}")


def test_the_route_weights_split_real_traffic_and_a_change_is_honoured_in_time(shop, gateway, custom):
    set_weights(custom, shop, 90, 10)
    served(gateway, shop, (90, 2), (10, 1), APPLY_DEADLINE)
    split = measure_versions(gateway.url)
    assert set(split) == {"v1", "v2"}, split  # every request answered by one of the two versions
    assert_share(split, "v2", 0.10)  # not a third, though the canary is a third of the pods

    with LoadGenerator(f"{gateway.url}/", rps=50, count_versions=True) as during:  # users across the reload
        written = set_weights(custom, shop, 50, 50)
        took = served(gateway, shop, (50, 2), (50, 1), APPLY_DEADLINE) - written
        after = measure_versions(gateway.url)
    assert took <= APPLY_DEADLINE
    assert_share(after, "v2", 0.50)
    assert errors(during.counts()) == 0, during.counts()  # a hot reload drops no request
    print(f"gateway data plane: 90/10 measured {split} ; 50/50 served {took:.2f}s after the change, "
          f"measured {after}; {sum(during.counts().values())} requests across the reload, none failed")


def test_a_backend_without_ready_endpoints_gets_no_traffic_and_its_share_is_answered_503(
        shop, gateway, custom, apps, core):
    set_weights(custom, shop, 100, 0)
    served(gateway, shop, (100, 2), (0, 1), APPLY_DEADLINE)
    only_stable = measure_versions(gateway.url, 300)
    assert set(only_stable) == {"v1"}, only_stable  # weight 0: not one request, and no failures either

    set_weights(custom, shop, 50, 50)
    apps.patch_namespaced_deployment_scale(CANARY, shop, {"spec": {"replicas": 0}})
    try:
        served(gateway, shop, (50, 2), (50, 0), APPLY_DEADLINE)
        load = measure(gateway.url, REQUESTS, RPS)
        by_version, by_status = load.versions(), load.counts()
        assert by_version.get("v2", 0) == 0, by_version
        assert set(by_status) == {200, 503}, by_status  # Gateway API: the share of a backend without endpoints
        assert by_version.get("v1", 0) == by_status[200]
        assert_share({"503": by_status[503], "200": by_status[200]}, "503", 0.50)  # not sent to stable instead
    finally:
        apps.patch_namespaced_deployment_scale(CANARY, shop, {"spec": {"replicas": 1}})
        wait_for(lambda: ready_endpoints(core, shop, CANARY) == 1, 90, "the canary never came back")


def test_stopping_the_controller_stops_haproxy_and_its_workers(cluster, tmp_path):
    controller = GatewayController(cluster.kubeconfig, tmp_path / "gateway",
                                   haproxy=require_binary("haproxy", "haproxy"))
    with controller:
        assert controller.running()
        master = controller.process
        assert master is not None
        pids = [master.pid, *controller.workers()]
        assert len(pids) > 1, "HAProxy's master reported no worker"
        argv = {pid: [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]] for pid in pids}
    assert master.poll() is not None
    # Neither the master nor a worker runs on (a pid counts only with the command line it had, not reused).
    assert not [pid for pid in pids if process_matches(pid, argv[pid])]
