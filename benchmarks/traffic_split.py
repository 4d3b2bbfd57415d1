"""Requested against measured canary weight, through a real Gateway data plane (issue 13, item 3).

    flock /tmp/ballast-node.lock python -m benchmarks.traffic_split [--weights-by test|ballast]
        [--weights 1,5,25,50] [--requests 2000] [--rps 150] [--state-dir DIR]

It needs the real node (root, containerd, ...; see tests/harness/README.md), so run it under the
machine's real-node lock. One local control plane (benchmarks/environment.py), the real node, the
HTTPRoute v1 CRD and, in namespace ``bench-split``, the demo app as two Deployments on real pods: stable
(version v1, 4 pods, Service ``shop``) and canary (v2, 1 pod, Service ``shop-canary``). A replica split
would give that canary 20 % of the traffic whatever the step asks. The simulated Gateway controller
(tests/harness/gateway.py: HAProxy configured from the HTTPRoute, hot-reloaded) is the data plane.

For each requested canary weight w (percent), the HTTPRoute ``shop`` gets backendRefs weights 100 - w
and w; once HAProxy serves them, ``--requests`` real requests go through it (new connection each, at
``--rps``), and the answers are counted by the version that gave them. Printed per step: the requested
weight, the requests answered, the canary's count, the measured share and its Wilson 95 % interval,
the seconds from the route's write to HAProxy serving it, and PASS/MISS.

The tolerance: the data plane's split is exact by construction (a uniform draw over the sum of the
weights, each backendRef owning as many draws as its weight), so a correct data plane deviates only by
sampling: the canary's count is Binomial(n, w). PASS when the count lies in the central 99 % range of
that distribution, computed exactly (tests/harness/binomial.py): a correct data plane MISSes one step in
a hundred; a data plane that split by replicas (20 %) or lagged behind the route misses by far. With
2,000 requests that range is about +-0.6 points at 1 %, +-1.3 at 5 %, +-2.5 at 25 % and +-2.9 at 50 %.

``--weights-by ballast``: a real Ballast release walks the steps instead. The operator runs, a ReleasePolicy
gives tier ``low`` these steps (each as long as ``--requests`` at ``--rps`` needs, plus 5 s), the
ServiceOwnership of Deployment ``shop`` (v1, 4 pods) names the HTTPRoute (``spec.traffic.gatewayRoute``,
issue 13 item 1), and v2 is shipped; Ballast writes the route (its own ``shop-ballast-stable`` and
``shop-ballast-canary`` Services). Users send at ``--rps`` throughout; each stretch of time in which HAProxy
served one canary weight is one step (requests sent within 0.5 s of a change are left out), and the run
succeeds when the release is Promoted after exactly the steps asked.

Not a test: it prints figures and PASS/MISS per step, and exits 1 only when the run itself failed.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import kubernetes

from ballast.api.common import GROUP as BALLAST_GROUP
from ballast.api.common import VERSION as BALLAST_VERSION
from benchmarks.environment import environment
from tests.harness import images, wait_for
from tests.harness.binomial import acceptance_range, wilson_interval
from tests.harness.cluster import LocalCluster
from tests.harness.gateway import GROUP, PLURAL, VERSION, Applied, GatewayController, install_httproute_crd
from tests.harness.loadgen import LoadGenerator
from tests.harness.node import LocalNode, NodeUnavailable
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, release_policy, service_ownership
from tests.integration.realpods import demo_pod_template, ready_endpoints
from tests.integration.releasing import FAST_TIER, created, final_release
from tests.integration.weighted import CANARY, ROUTE, STABLE, deploy_versions, measure, served, set_weights

NAMESPACE = "bench-split"
POLICY = "bench-split"
STABLE_PODS, CANARY_PODS = 4, 1
CONFIDENCE = 0.99
APPLY_TIMEOUT = 30.0
EDGE_SECONDS = 0.5
"""With --weights-by ballast, requests sent this close to a route change are not counted for either step:
they may have been accepted by the HAProxy worker of the other configuration."""


@dataclass(frozen=True)
class Step:
    requested: float
    """Canary weight in percent."""
    answered: int
    canary: int
    others: dict[str, int]
    """Answers by anything but the two versions ("" = no answer or not the app's), for the record."""
    applied_seconds: float | None
    """From the route's write to HAProxy serving it (None where Ballast wrote it: the moment is not seen)."""

    @property
    def measured(self) -> float:
        return self.canary / self.answered

    @property
    def passed(self) -> bool:
        low, high = acceptance_range(self.answered, self.requested / 100, CONFIDENCE)
        return low <= self.canary <= high and not self.others


def row(step: Step) -> str:
    low, high = wilson_interval(step.canary, step.answered)
    accept_low, accept_high = acceptance_range(step.answered, step.requested / 100, CONFIDENCE)
    others = f"  others {step.others}" if step.others else ""
    applied = "-" if step.applied_seconds is None else f"{step.applied_seconds:.2f} s"
    return (f"{step.requested:>7g} %  {step.answered:>8}  {step.canary:>6}  {step.measured:>8.2%}  "
            f"[{low:6.2%}, {high:6.2%}]  {accept_low:>5}-{accept_high:<5}  {applied:>8}  "
            f"{'PASS' if step.passed else 'MISS'}{others}")


def run_step(custom: kubernetes.client.CustomObjectsApi, gateway: GatewayController, weight: int,
             requests: int, rps: float) -> Step:
    written = set_weights(custom, NAMESPACE, 100 - weight, weight)
    applied = served(gateway, NAMESPACE, (100 - weight, STABLE_PODS), (weight, CANARY_PODS), APPLY_TIMEOUT)
    by_version = measure(gateway.url, requests, rps).versions()
    return step_of(weight, by_version, applied - written)


def step_of(requested: float, by_version: dict[str, int], applied_seconds: float | None) -> Step:
    others = {version: n for version, n in by_version.items() if version not in ("v1", "v2")}
    return Step(requested, sum(by_version.values()), by_version.get("v2", 0), others, applied_seconds)


def by_test(api: kubernetes.client.ApiClient, gateway: GatewayController, weights: list[int], requests: int,
            rps: float) -> tuple[list[Step], bool]:
    """The script writes each step's weights; the stable and the canary are two Deployments of their own."""
    deploy_versions(kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api), NAMESPACE,
                    {STABLE: ("v1", STABLE_PODS), CANARY: ("v2", CANARY_PODS)})
    print(f"weights written by this script to HTTPRoute {NAMESPACE}/{ROUTE}; stable {STABLE_PODS} pods (v1), "
          f"canary {CANARY_PODS} pod (v2): a replica split would give the canary "
          f"{CANARY_PODS / (STABLE_PODS + CANARY_PODS):.0%}")
    print(f"{requests} requests per step at {rps:g}/s\n", flush=True)
    print(HEADER)
    steps = []
    for weight in weights:
        steps.append(run_step(kubernetes.client.CustomObjectsApi(api), gateway, weight, requests, rps))
        print(row(steps[-1]), flush=True)
    return steps, True


def canary_share(gateway: GatewayController, applied: Applied) -> float:
    """The canary's weight in percent of the route's rule as HAProxy served it (0 while no canary is in it)."""
    served_now = gateway.weights(f"{NAMESPACE}/{ROUTE}", applied=applied)
    canary = [weight for service, (weight, endpoints) in served_now.items()
              if service.endswith("-ballast-canary:80") and endpoints]
    total = sum(w for w, _ in served_now.values())
    return 100 * sum(canary) / total if canary and total else 0.0


def steps_seen(gateway: GatewayController, load: LoadGenerator) -> list[Step]:
    """The answers of each stretch of time in which HAProxy served one canary weight (> 0), counted by version."""
    changes: list[tuple[float, float]] = []  # (since, canary share), one entry per change of share
    for applied in gateway.history:
        share = canary_share(gateway, applied)
        if not changes or changes[-1][1] != share:
            changes.append((applied.at, share))
    ends = [since for since, _ in changes[1:]] + [load.stopped or time.monotonic()]
    return [step_of(share, load.versions(since + EDGE_SECONDS, until - EDGE_SECONDS), None)
            for (since, share), until in zip(changes, ends, strict=True) if share > 0]


def by_ballast(api: kubernetes.client.ApiClient, gateway: GatewayController, weights: list[int], requests: int,
               rps: float) -> tuple[list[Step], bool]:
    """A real release walks the steps: Ballast writes the route (stable and canary Services of its own), the
    benchmark only watches what HAProxy serves and counts the answers of each step."""
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    step_seconds = math.ceil(requests / rps) + 5  # each step carries at least `requests` requests
    custom.create_cluster_custom_object(BALLAST_GROUP, BALLAST_VERSION, "releasepolicies", release_policy(
        POLICY, {"ballast.dev/bench": NAMESPACE}, tiers={"low": {
            **FAST_TIER, "steps": weights, "stepDuration": f"{step_seconds}s", "readyDeadline": "60s",
            "minRequests": 10}}))
    custom.create_namespaced_custom_object(BALLAST_GROUP, BALLAST_VERSION, NAMESPACE, "serviceownerships",
                                           service_ownership(STABLE, {"app": STABLE}, riskTier="low", traffic={
                                               "gatewayRoute": {"name": ROUTE, "backend": STABLE, "port": 80}}))
    body = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": STABLE, "labels": {"app": STABLE}, "annotations": OWNERSHIP_ANNOTATIONS},
            "spec": {"replicas": STABLE_PODS, "selector": {"matchLabels": {"app": STABLE}},
                     "template": demo_pod_template({"app": STABLE}, version="v1")}}
    wait_for(lambda: created(apps, NAMESPACE, body), 30, "the Deployment was never admitted")
    core.create_namespaced_service(NAMESPACE, {"metadata": {"name": STABLE}, "spec": {
        "selector": {"app": STABLE}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute", "metadata": {"name": ROUTE},
        "spec": {"parentRefs": [{"name": "edge"}], "rules": [{"backendRefs": [{"name": STABLE, "port": 80}]}]}})
    wait_for(lambda: ready_endpoints(core, NAMESPACE, STABLE) == STABLE_PODS, 120, "the stable pods never got ready")
    served_all = {f"{NAMESPACE}/{STABLE}:80": (1, STABLE_PODS)}
    gateway.wait_applied(lambda _: gateway.weights(f"{NAMESPACE}/{ROUTE}") == served_all, APPLY_TIMEOUT,
                         "HAProxy never served the stable Service")
    probe = {"spec": {"template": {"metadata": {"annotations": {"probe": "1"}}}}}
    wait_for(lambda: apps.patch_namespaced_deployment(STABLE, NAMESPACE, probe, dry_run="All").spec.paused, 30,
             "the pause webhook never took over template changes")
    print(f"weights written by Ballast: a release of {NAMESPACE}/{STABLE} (v1 -> v2, {STABLE_PODS} pods) through "
          f"HTTPRoute {NAMESPACE}/{ROUTE}, steps {weights} of {step_seconds} s; users at {rps:g}/s throughout\n",
          flush=True)
    with LoadGenerator(f"{gateway.url}/", rps=rps, workers=32, count_versions=True) as load:
        apps.patch_namespaced_deployment(STABLE, NAMESPACE, {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "env": [{"name": "VERSION", "value": "v2"}]}]}}}})
        release = final_release(custom, NAMESPACE, timeout=len(weights) * (step_seconds + 60) + 120)
    print(HEADER)
    steps = steps_seen(gateway, load)
    for step in steps:
        print(row(step))
    status = release["status"]
    print(f"\nrelease {release['metadata']['name']}: {status['phase']} ({status.get('reason', '')}); "
          f"route weights Ballast set, in order: {[step.requested for step in steps]} (steps asked: {weights})")
    return steps, status["phase"] == "Promoted" and [step.requested for step in steps] == weights


HEADER = "requested  answered  canary  measured  95 % interval      99 % range  route->served"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.traffic_split", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-by", choices=("test", "ballast"), default="test",
                        help="who writes the route's weights: this script (default) or a Ballast release")
    parser.add_argument("--weights", default="1,5,25,50", help="canary weights in percent (default %(default)s)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per step (default %(default)s)")
    parser.add_argument("--rps", type=float, default=150, help="requests per second (default %(default)s)")
    parser.add_argument("--state-dir", help="cluster state dir (default: a fresh temp dir, removed on success); "
                        "a healthy cluster already running there is reused and left running")
    args = parser.parse_args(argv)
    weights = [int(w) for w in args.weights.split(",")]
    ballast = args.weights_by == "ballast"
    with environment(args.state_dir, [POLICY], [NAMESPACE], start_operator=ballast) as env:
        node = LocalNode(LocalCluster(env.state_dir))
        reused_node = node.info is not None
        try:
            print("starting the real node ...", flush=True)
            node.start()
        except NodeUnavailable as exc:
            print(f"the real node cannot run here: {exc}", file=sys.stderr)
            return 1
        try:
            images.import_archive(node.ctr, images.demo_app_archive())
            install_httproute_crd(env.info.kubeconfig)
            kubernetes.client.CoreV1Api(env.api).create_namespace(
                {"metadata": {"name": NAMESPACE, "labels": {"ballast.dev/bench": NAMESPACE}}})
            started = time.monotonic()
            with GatewayController(env.info.kubeconfig, env.state_dir / "gateway") as gateway:
                print(f"data plane: HAProxy at {gateway.url}, configured from the HTTPRoutes "
                      "(tests/harness/gateway.py)")
                steps, completed = (by_ballast if ballast else by_test)(env.api, gateway, weights, args.requests,
                                                                          args.rps)
                errors = list(gateway.errors)
            passed = sum(step.passed for step in steps)
            print(f"\n{passed} of {len(steps)} steps PASS (canary count within the central {CONFIDENCE:.0%} range "
                  f"of Binomial(answered, requested)) in {time.monotonic() - started:.0f} s; "
                  f"controller errors: {errors or 'none'}")
            env.ok = completed and not errors
            return 0 if env.ok else 1
        finally:
            if not reused_node:
                node.stop()


if __name__ == "__main__":
    sys.exit(main())
