"""The real node (tests/harness/node.py): real containers, readiness probes, pod IPs, kube-proxy.

What podsim cannot prove: a kubelet starts a container from an imported image, an HTTP readiness
probe passes, the pod gets an IP on the CNI bridge that the host reaches, and a ClusterIP Service
spreads connections over two pods through kube-proxy's iptables rules. And the node's own contract:
simulated pods never land on it, and stopping it leaves the host as it was.

The cleanup test comes first: it starts and stops its own node before the module's `real_node`
fixture starts the shared one (only one node can run at a time).
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import requests

from ballast.api.releasepolicy import PrometheusQueries
from tests.harness import images, wait_for
from tests.harness.cluster import LocalCluster
from tests.harness.images import BUSYBOX_IMAGE
from tests.harness.loadgen import LoadGenerator
from tests.harness.node import (
    BRIDGE,
    NETNS_DIR,
    POD_CIDR,
    POD_LOGS_DIR,
    REAL_POD_PLACEMENT,
    LocalNode,
    iptables_rules,
    mounts_under,
    owned,
    start_node_or_skip,
)
from tests.harness.podwatch import REAL_NODE_TAINT
from tests.integration.realpods import (
    DEMO_PORT,
    create_ready_pod,
    demo_pod_template,
    import_image,
    query,
    ready_endpoints,
    scalar,
    service,
    serving,
    wait_for_default_service_account,
)

HTTP_PORT = 8080
# The pod serves its own name, so a response says which pod answered.
HTTPD = f"mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p {HTTP_PORT} -h /tmp/www"


def real_pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            **REAL_POD_PLACEMENT,
            "terminationGracePeriodSeconds": 1,  # busybox httpd as pid 1 ignores SIGTERM
            "containers": [{
                "name": "httpd",
                "image": BUSYBOX_IMAGE,
                "imagePullPolicy": "Never",  # imported, no registry
                "command": ["/bin/sh", "-c", HTTPD],
                "ports": [{"containerPort": HTTP_PORT}],
                "readinessProbe": {"httpGet": {"path": "/index.html", "port": HTTP_PORT}, "periodSeconds": 1},
            }],
        },
    }


def http_get(url: str) -> str | None:
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:
        return None
    return response.text.strip() if response.status_code == 200 else None


def node_processes(socket: str) -> list[str]:
    """Command lines of containerd and its shims serving `socket`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                text = " ".join(a.decode(errors="replace") for a in argv)
                if "containerd" in argv[0].decode(errors="replace") and socket in text:
                    found.append(text)
    return found


def owned_iptables() -> set[tuple[str, str, str]]:
    """Every KUBE-*/CNI-* chain and rule, as (tool, table, line)."""
    return {(tool, table, line) for tool, tables in iptables_rules().items()
            for table, lines in tables.items() for line in lines if owned(line)}


def runc_containers() -> set[str]:
    """Containers runc still knows in containerd's k8s.io namespace."""
    result = subprocess.run(["runc", "--root", "/run/containerd/runc/k8s.io", "list", "-q"],
                            capture_output=True, text=True)
    return set(result.stdout.split())


def test_stop_leaves_nothing_behind(local_cluster: LocalCluster, core, namespace) -> None:
    assert LocalNode(local_cluster).info is None, "a node is already running; this test needs its own"
    state_dir = local_cluster.state_dir
    before_mounts, before_netns = set(mounts_under(state_dir)), set(NETNS_DIR.glob("*"))
    before_iptables = owned_iptables()
    before_pod_logs = set(POD_LOGS_DIR.glob("*"))

    node = start_node_or_skip(local_cluster)
    try:
        assert node.info is not None
        socket = node.info.containerd_socket
        create_ready_pod(core, namespace, real_pod("leftover"))
        containers = set(subprocess.run([*node.ctr, "containers", "ls", "-q"], capture_output=True,
                                        text=True, check=True).stdout.split())
        # While it runs, every check below has something to find: the checks can fail.
        assert len(containers) == 2  # the pause sandbox and httpd
        assert containers <= runc_containers()
        assert set(mounts_under(state_dir)) - before_mounts
        assert set(NETNS_DIR.glob("*")) - before_netns
        assert owned_iptables() - before_iptables
        assert set(POD_LOGS_DIR.glob("*")) - before_pod_logs
        assert node_processes(socket)
        assert Path(f"/sys/class/net/{BRIDGE}").exists()
    finally:
        node.stop()

    assert node_processes(socket) == []
    assert containers & runc_containers() == set()
    assert set(mounts_under(state_dir)) == before_mounts
    assert set(NETNS_DIR.glob("*")) == before_netns
    assert owned_iptables() == before_iptables
    assert set(POD_LOGS_DIR.glob("*")) == before_pod_logs
    assert not Path(f"/sys/class/net/{BRIDGE}").exists()
    assert not (node.dir / "cni").exists(), "host-local IPAM state left behind"
    assert not core.list_node(field_selector=f"metadata.name={node.name}").items


def test_node_registers_ready_and_tainted(real_node: LocalNode, core) -> None:
    node = core.read_node(real_node.name)
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"
    assert [(t.key, t.effect) for t in node.spec.taints or []] == [(REAL_NODE_TAINT, "NoSchedule")]
    assert node.status.node_info.kubelet_version == "v1.20.2"
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    print(f"node Ready {real_node.ready_seconds:.1f}s after start")


def test_simulated_pods_stay_off_the_node(real_node: LocalNode, core, namespace) -> None:
    """A pod without the toleration is podsim's: the scheduler refuses it the node, podsim runs it."""
    wait_for_default_service_account(core, namespace)
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "simulated"},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    })

    def refused_and_simulated() -> bool:
        events = core.list_namespaced_event(namespace, field_selector="involvedObject.name=simulated").items
        pod = core.read_namespaced_pod("simulated", namespace)
        simulated = pod.status.phase == "Running" and pod.status.host_ip == "127.0.0.1"  # podsim's doing
        return simulated and any(e.reason == "FailedScheduling" for e in events)

    wait_for(refused_and_simulated, 60, "kube-scheduler never refused the pod, or podsim never ran it")
    pod = core.read_namespaced_pod("simulated", namespace)
    assert not pod.spec.node_name
    assert any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)  # still podsim's


def test_real_pod_becomes_ready_with_a_reachable_ip(real_node: LocalNode, core, namespace) -> None:
    pod, seconds = create_ready_pod(core, namespace, real_pod("web"))
    assert pod.spec.node_name == real_node.name
    (container,) = pod.status.container_statuses
    assert container.ready and container.state.running is not None
    assert container.container_id.startswith("containerd://")  # a real container, not podsim's status
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(POD_CIDR)
    assert http_get(f"http://{pod.status.pod_ip}:{HTTP_PORT}/") == "web"
    print(f"pod Ready {seconds:.1f}s after create")


def test_cluster_ip_service_balances_over_two_pods(real_node: LocalNode, core, namespace) -> None:
    for name in ("web-a", "web-b"):
        create_ready_pod(core, namespace, real_pod(name, {"app": "web"}))
    service = core.create_namespaced_service(namespace, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": HTTP_PORT}]},
    })
    url = f"http://{service.spec.cluster_ip}/"
    seen: set[str] = set()

    def both_answer() -> bool:
        # kube-proxy programs its rules asynchronously: poll until each pod has answered once.
        if answer := http_get(url):
            seen.add(answer)
        return seen == {"web-a", "web-b"}

    wait_for(both_answer, 60, f"the ClusterIP did not reach both pods (seen {seen})", interval=0.05)
    requests_sent = 40
    split = Counter(http_get(url) for _ in range(requests_sent))  # a new connection each time
    assert sum(split.values()) == requests_sent and set(split) == {"web-a", "web-b"}, split
    # Random per connection (p = 1/2): fewer than 8 of 40 happens with probability ~1e-4.
    assert min(split.values()) >= 8, split
    print(f"ClusterIP split over {requests_sent} requests: {dict(split)}")



# -- the Python images, Prometheus' pod discovery and real traffic ----------------------------------------

@pytest.fixture(scope="module")
def demo_image(real_node: LocalNode, pytestconfig: pytest.Config) -> str:
    seconds = import_image(real_node, pytestconfig, images.demo_app_archive)
    print(f"demo app image built or found, and imported, in {seconds:.1f}s")
    return images.DEMO_APP_IMAGE


def demo_pod(name: str, labels: dict[str, str] | None = None, **container: Any) -> dict[str, Any]:
    template = demo_pod_template(labels or {"app": name}, **container)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **template["metadata"]},
            "spec": template["spec"]}


def test_demo_app_image_is_ready_only_after_its_startup_delay(real_node, core, namespace, demo_image) -> None:
    """The Debian-based image runs as uid 65532 under containerd, and the kubelet's readiness probe holds the
    pod un-Ready for the app's start-up delay; then /metrics has both counters and the latency histogram."""
    delay = 4
    pod, seconds = create_ready_pod(core, namespace, demo_pod("demo", startup_seconds=delay))
    (container,) = pod.status.container_statuses
    started = container.state.running.started_at
    ready = next(c.last_transition_time for c in pod.status.conditions if c.type == "Ready")
    # Whole-second timestamps: a true gap of >= 4 s never shows as less than 4.
    assert (ready - started).total_seconds() >= delay, (started, ready)
    metrics = http_get(f"http://{pod.status.pod_ip}:{DEMO_PORT}/metrics") or ""
    assert 'http_requests_total{code="500"} 0' in metrics and "http_request_duration_seconds_count 0" in metrics
    print(f"demo pod Ready {seconds:.1f}s after create, {(ready - started).total_seconds():.0f}s after its "
          f"container started (start-up delay {delay}s)")


def test_operator_image_runs_the_cli_as_65532(real_node, core, namespace, pytestconfig) -> None:
    """The operator image (the Dockerfile's final stage without Docker) starts `ballast operator run` as its
    entrypoint; `--help` in place of the CMD makes the run short. Its user is checked from the pod's log."""
    seconds = import_image(real_node, pytestconfig, images.operator_archive)
    wait_for_default_service_account(core, namespace)
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "operator-help"},
        "spec": {**REAL_POD_PLACEMENT, "restartPolicy": "Never", "containers": [{
            "name": "ballast", "image": images.OPERATOR_IMAGE, "imagePullPolicy": "Never", "args": ["--help"]}]},
    })

    def finished() -> kubernetes.client.V1Pod | None:
        pod = core.read_namespaced_pod("operator-help", namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    pod = wait_for(finished, 90, "the operator image's pod never finished")
    logs = sorted(POD_LOGS_DIR.glob(f"{namespace}_operator-help_*/ballast/*.log"))
    output = logs[-1].read_text() if logs else ""
    assert pod.status.phase == "Succeeded", output
    assert "Usage:" in output and "operator run" in output, output
    uid = subprocess.run([*real_node.ctr, "containers", "info", pod.status.container_statuses[0].container_id
                          .removeprefix("containerd://")], capture_output=True, text=True, check=True).stdout
    assert '"uid": 65532' in uid and '"gid": 65532' in uid
    print(f"operator image built or found, and imported, in {seconds:.1f}s")


def test_prometheus_discovers_and_scrapes_real_pods_by_the_default_selectors(
        real_node, local_cluster, core, namespace, demo_image) -> None:
    """Pod discovery (podsd, with the kind demo's relabelling) finds the pod and labels its series with
    `namespace` and `pod`, so Ballast's default queries select it as they would on a user's cluster."""
    pod, _ = create_ready_pod(core, namespace, demo_pod("scraped", error_ratio=1.0))
    prometheus = local_cluster.info.prometheus_url
    selected = f'http_requests_total{{namespace="{namespace}",pod=~"scraped",code=~"5.."}}'
    # Traffic only once the pod is scraped, as with a real rollout: increase() needs the series' 0.
    wait_for(lambda: scalar(prometheus, f"sum({selected})") == 0, 60, f"Prometheus never found {selected}")
    for _ in range(7):
        requests.get(f"http://{pod.status.pod_ip}:{DEMO_PORT}/", timeout=5)
    wait_for(lambda: scalar(prometheus, f"sum({selected})") == 7, 60,
             f"Prometheus never saw the pod's 7 errors through {selected}")
    defaults = PrometheusQueries()
    window = {"$namespace": namespace, "$pods": "scraped", "$window": "5m"}
    rendered = {name: getattr(defaults, name) for name in ("requests", "errors")}
    for token, value in window.items():
        rendered = {name: text.replace(token, value) for name, text in rendered.items()}
    # One evaluation for both (increase() extrapolates by the query's instant): every request failed.
    assert scalar(prometheus, f'({rendered["errors"]}) / ({rendered["requests"]})') == 1.0, rendered
    assert (scalar(prometheus, rendered["errors"]) or 0) >= 7, rendered  # extrapolated up, never down


def test_load_generator_and_prometheus_agree_on_errors(real_node, local_cluster, core, namespace, demo_image):
    """Real traffic through kube-proxy: what users saw (the load generator's own count) and what the pods
    reported (Prometheus) agree; only requests nobody answered may be counted by one side alone."""
    for name in ("agree-a", "agree-b"):
        create_ready_pod(core, namespace, demo_pod(name, {"app": "agree"}, error_ratio=0.2))
    url = service(core, namespace, "agree", {"app": "agree"})
    serving(url, lambda: ready_endpoints(core, namespace, "agree"), 2)
    with LoadGenerator(f"{url}/", rps=30) as load:
        time.sleep(8)
    users = load.counts()
    prometheus = local_cluster.info.prometheus_url
    by_pods = f'sum(http_requests_total{{namespace="{namespace}"}})'
    answered = sum(n for status, n in users.items() if status)
    wait_for(lambda: (scalar(prometheus, by_pods) or 0) >= answered, 30,
             f"Prometheus never counted the {answered} answered requests")
    wait_for(lambda: len(query(prometheus, f'http_requests_total{{namespace="{namespace}",code="500"}}')) == 2,
             30, "Prometheus lacks a pod's error series")
    reported = scalar(prometheus, f'sum(http_requests_total{{namespace="{namespace}",code="500"}})')
    per_pod = query(prometheus, f'sum by (pod) (http_requests_total{{namespace="{namespace}"}})')
    unanswered = users.get(0, 0)
    assert unanswered <= 0.02 * sum(users.values()), users
    assert abs(reported - users.get(500, 0)) <= unanswered, (reported, users)
    assert users.get(500, 0) >= 0.1 * answered, users  # 20 % configured: the errors are real, not noise
    assert all(float(p["value"][1]) > 0 for p in per_pod) and len(per_pod) == 2, per_pod  # both pods served
    print(f"users saw {users} over {sum(users.values())} requests; pods reported {reported:.0f} errors; "
          f"split by pod {[int(float(p['value'][1])) for p in per_pod]}")
