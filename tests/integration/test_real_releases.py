"""Releases on real pods: the real node runs the demo app, the load generator is the users, Prometheus
scrapes the pods through pod discovery, and the operator runs as a process on the host as in
test_releases.py. What the simulators cannot show: the kubelet's readiness probes deciding when a canary
counts as ready, kube-proxy giving the canary its share of real requests, and real failures (a probe that
never passes, a container that crashes, an image that cannot be pulled) ending in CanaryNotReady.

Promotion and rollback times are printed (not asserted: they measure this machine as much as Ballast).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import kubernetes
import pytest

from ballast.api.common import GROUP, VERSION
from ballast.api.vocabulary import CANARY_TRACK, TRACK_LABEL
from tests.harness import images, wait_for
from tests.harness.loadgen import LoadGenerator, errors
from tests.harness.node import LocalNode
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, release_policy, service_ownership
from tests.integration.realpods import demo_pod_template, import_image, ready_endpoints, service, serving
from tests.integration.releasing import FAST_TIER, canary_gone, created, final_release

REAL_TIER = {**FAST_TIER, "steps": [25], "stepDuration": "5s", "readyDeadline": "25s"}
"""One step: with 2 stable pods the canary is 1 pod (a third of the traffic). The ready deadline leaves a
real pod room to start on a busy 2-core machine (start-up delay included) and still fails a broken one."""
RPS = 30
"""Enough for the canary's ~10 requests a second to reach minRequests (20) well within a 5 s step."""
REPLICAS = 2


@pytest.fixture(scope="module")
def demo_image(real_node: LocalNode, pytestconfig: pytest.Config) -> str:
    import_image(real_node, pytestconfig, images.demo_app_archive)
    return images.DEMO_APP_IMAGE


@pytest.fixture
def shop(real_node, demo_image, core, apps, custom, namespace, operator) -> Iterator[tuple[str, LoadGenerator]]:
    """A governed namespace with the demo app 'shop' (version 1, no errors) on real pods behind a Service,
    and users sending RPS requests a second to it for the whole test."""
    policy = f"real-{namespace}"
    custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
        policy, {"ballast.dev/test-ns": namespace}, tiers={"low": REAL_TIER}))
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                           service_ownership("shop", {"app": "shop"}, riskTier="low"))
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop", "labels": {"app": "shop"}, "annotations": OWNERSHIP_ANNOTATIONS},
        "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "shop"}},
                 "template": demo_pod_template({"app": "shop"}, version="1")},
    }
    wait_for(lambda: created(apps, namespace, body), 30, "the Deployment was never admitted")
    url = service(core, namespace, "shop", {"app": "shop"})
    serving(url, lambda: ready_endpoints(core, namespace, "shop"), REPLICAS, timeout=120)
    probe = {"spec": {"template": {"metadata": {"annotations": {"probe": "1"}}}}}
    wait_for(lambda: apps.patch_namespaced_deployment("shop", namespace, probe, dry_run="All").spec.paused, 30,
             "the pause webhook never took over template changes")
    with LoadGenerator(f"{url}/", rps=RPS) as load:
        yield namespace, load
    custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy)


def ship(apps, namespace: str, image: str | None = None, **container: Any) -> float:
    """A new version of the app's container (env by name, image, command); when it was shipped."""
    env = [{"name": name.upper(), "value": str(value)} for name, value in container.pop("env", {}).items()]
    change: dict[str, Any] = {"name": "app", **container, **({"env": env} if env else {})}
    if image:
        change["image"] = image
    shipped = time.monotonic()
    patched = apps.patch_namespaced_deployment("shop", namespace, {"spec": {"template": {"spec": {
        "containers": [change]}}}})
    assert patched.spec.paused is True  # the webhook held the Deployment: the release decides
    return shipped


def canary_pods(core, namespace: str) -> list[kubernetes.client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"{TRACK_LABEL}={CANARY_TRACK}").items


def nat_rules_mention(ips: set[str]) -> bool:
    rules = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    return any(ip in rules for ip in ips)


def test_good_version_is_promoted_on_real_pods(shop, apps, custom, core):
    namespace, load = shop
    shipped = ship(apps, namespace, env={"version": "2"})
    release = final_release(custom, namespace, timeout=180)
    took = time.monotonic() - shipped
    status = release["status"]
    assert status["phase"] == "Promoted", status
    verdicts = [a["verdict"] for a in status["analyses"]]
    analysis = status["analyses"][-1]
    # Early looks during the step may lack data (Inconclusive); the step's verdict passes on real requests.
    assert set(verdicts) <= {"Pass", "Inconclusive"} and verdicts[-1] == "Pass", status["analyses"]
    assert analysis["canary"]["requests"] >= 20 and analysis["canary"]["errors"] == 0, analysis
    wait_for(lambda: canary_gone(apps, namespace), 60, "the canary was never deleted")

    def rolled_out() -> bool:
        deployment = apps.read_namespaced_deployment("shop", namespace)
        return (deployment.status.updated_replicas == deployment.status.ready_replicas == REPLICAS
                and not deployment.spec.paused and deployment.status.replicas == REPLICAS)

    wait_for(rolled_out, 120, "version 2 never rolled out")
    users = load.counts(since=shipped)
    assert errors(users) == 0, users  # a good version with real probes: no user saw a failure
    print(f"promotion on real pods: Promoted {took:.1f}s after the change; canary served "
          f"{analysis['canary']['requests']:.0f} requests in its step (verdicts {verdicts}); users {users}")


def test_real_errors_under_real_traffic_roll_back(shop, apps, custom, core):
    namespace, load = shop
    shipped = ship(apps, namespace, env={"version": "2-bad", "error_ratio": "0.5"})
    canary_ips: set[str] = set()

    def canary_serving() -> bool:
        canary_ips.update(p.status.pod_ip for p in canary_pods(core, namespace) if p.status.pod_ip)
        return bool(canary_ips) and load.counts(since=shipped).get(500, 0) > 0

    wait_for(canary_serving, 90, "the canary never served users")
    release = final_release(custom, namespace, timeout=120)
    took = time.monotonic() - shipped
    first_error = min(a.sent for a in load.answers(since=shipped) if a.status == 500) - shipped
    status = release["status"]
    assert status["phase"] == "RolledBack" and status["reason"] == "AnalysisFailed", status
    wait_for(lambda: canary_gone(apps, namespace), 60, "the canary was never deleted")
    during = load.counts(since=shipped)
    # Users saw the canary's real 500s: the errors Ballast judged are the ones users got.
    assert during.get(500, 0) > 0, during
    wait_for(lambda: not nat_rules_mention(canary_ips), 30, "kube-proxy still routes to the canary")
    after = time.monotonic()
    wait_for(lambda: sum(load.counts(since=after).values()) >= 2 * RPS, 30, "too few requests after rollback")
    spared = load.counts(since=after)
    assert spared.get(500, 0) == 0, spared  # the stable version answers everything again
    image = apps.read_namespaced_deployment("shop", namespace).spec.template.spec.containers[0]
    assert {e.name: e.value for e in image.env}["VERSION"] == "1"
    print(f"rollback on real pods: RolledBack {took:.1f}s after the change, {took - first_error:.1f}s after the "
          f"first 5xx a user saw (polled every 0.2s); users saw {during.get(500, 0)} "
          f"5xx of {sum(during.values())} requests until it ({during}); none after kube-proxy dropped the canary")


def waiting_reasons(core, namespace: str) -> set[str]:
    reasons = set()
    for pod in canary_pods(core, namespace):
        for container in pod.status.container_statuses or []:
            if container.state.waiting:
                reasons.add(container.state.waiting.reason)
            if container.last_state.terminated:
                reasons.add(f"exited {container.last_state.terminated.exit_code}")
            if container.state.running and not container.ready:
                reasons.add("RunningNotReady")
    return reasons


@pytest.mark.parametrize(("broken", "change", "symptoms"), [
    ("readiness", {"env": {"version": "2-slow", "startup_seconds": "3600"}}, {"RunningNotReady"}),
    ("crash", {"env": {"version": "2-crash"}, "command": ["python3", "-c", "raise SystemExit('bad config')"]},
     {"CrashLoopBackOff", "exited 1"}),
    ("image", {"image": "docker.io/library/ballast-demo-app:does-not-exist"}, {"ErrImagePull", "ImagePullBackOff"}),
])
def test_a_canary_that_never_gets_ready_is_rolled_back(shop, apps, custom, core, broken, change, symptoms):
    """The kubelet's own verdicts (a failing probe, a crash loop, an image that cannot be pulled) keep the
    canary un-Ready past the tier's deadline; Ballast rolls back with CanaryNotReady and users never notice."""
    namespace, load = shop
    shipped = ship(apps, namespace, **change)
    seen: set[str] = set()

    def symptom() -> bool:
        seen.update(waiting_reasons(core, namespace))
        return bool(seen & symptoms)

    wait_for(symptom, 90, f"the canary never showed {symptoms} (seen {seen})")
    release = final_release(custom, namespace, timeout=120)
    took = time.monotonic() - shipped
    status = release["status"]
    assert status["phase"] == "RolledBack" and status["reason"] == "CanaryNotReady", status
    assert "was not ready for 25s" in status["message"], status
    wait_for(lambda: canary_gone(apps, namespace), 60, "the canary was never deleted")
    users = load.counts(since=shipped)
    assert users.get(500, 0) == 0, users  # an un-Ready canary never receives traffic
    print(f"CanaryNotReady ({broken}): kubelet showed {sorted(seen & symptoms)}; RolledBack {took:.1f}s after "
          f"the change; users {users}")
