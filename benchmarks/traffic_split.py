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

``--weights-by ballast`` would let a real Ballast release with Gateway routing walk the steps and
measure each step while it lasts. It is not available yet: it reports so and exits 2 without starting
anything (see ``ballast_routing_unavailable``); nothing is simulated in its place.

Not a test: it prints figures and PASS/MISS per step, and exits 1 only when the run itself failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import dataclass

import kubernetes

from benchmarks.environment import environment
from tests.harness import images
from tests.harness.binomial import acceptance_range, wilson_interval
from tests.harness.cluster import LocalCluster
from tests.harness.gateway import GatewayController, install_httproute_crd
from tests.harness.node import LocalNode, NodeUnavailable
from tests.integration.weighted import CANARY, STABLE, deploy_versions, measure, served, set_weights

NAMESPACE = "bench-split"
STABLE_PODS, CANARY_PODS = 4, 1
CONFIDENCE = 0.99
APPLY_TIMEOUT = 30.0


@dataclass(frozen=True)
class Step:
    requested: int
    """Canary weight in percent."""
    answered: int
    canary: int
    others: dict[str, int]
    """Answers by anything but the two versions ("" = no answer or not the app's), for the record."""
    applied_seconds: float

    @property
    def measured(self) -> float:
        return self.canary / self.answered

    @property
    def passed(self) -> bool:
        low, high = acceptance_range(self.answered, self.requested / 100, CONFIDENCE)
        return low <= self.canary <= high and not self.others


def ballast_routing_unavailable() -> str | None:
    """Why `--weights-by ballast` cannot run here; None would mean it can (never yet: see the docstring)."""
    if importlib.util.find_spec("ballast.api.routing") is None:
        return ("this Ballast has no Gateway API routing (no ballast.api.routing: issue 13 item 1 is not merged "
                "here), so no release can set the route's weights")
    return ("Ballast has Gateway API routing, but this benchmark does not drive a release through it yet "
            "(a ServiceOwnership with spec.traffic.gatewayRoute and a tier with these steps)")


def row(step: Step) -> str:
    low, high = wilson_interval(step.canary, step.answered)
    accept_low, accept_high = acceptance_range(step.answered, step.requested / 100, CONFIDENCE)
    others = f"  others {step.others}" if step.others else ""
    return (f"{step.requested:>7} %  {step.answered:>8}  {step.canary:>6}  {step.measured:>8.2%}  "
            f"[{low:6.2%}, {high:6.2%}]  {accept_low:>5}-{accept_high:<5}  {step.applied_seconds:>6.2f} s  "
            f"{'PASS' if step.passed else 'MISS'}{others}")


def run_step(custom: kubernetes.client.CustomObjectsApi, gateway: GatewayController, weight: int,
             requests: int, rps: float) -> Step:
    written = set_weights(custom, NAMESPACE, 100 - weight, weight)
    applied = served(gateway, NAMESPACE, (100 - weight, STABLE_PODS), (weight, CANARY_PODS), APPLY_TIMEOUT)
    by_version = measure(gateway.url, requests, rps).versions()
    others = {version: n for version, n in by_version.items() if version not in ("v1", "v2")}
    return Step(weight, sum(by_version.values()), by_version.get("v2", 0), others, applied - written)


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
    if args.weights_by == "ballast":
        print(f"--weights-by ballast: not yet available: {ballast_routing_unavailable()}. "
              "Run with --weights-by test for the data plane's own figures.")
        return 2

    with environment(args.state_dir, [], [NAMESPACE], start_operator=False) as env:
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
            core, apps = kubernetes.client.CoreV1Api(env.api), kubernetes.client.AppsV1Api(env.api)
            core.create_namespace({"metadata": {"name": NAMESPACE}})
            deploy_versions(core, apps, NAMESPACE, {STABLE: ("v1", STABLE_PODS), CANARY: ("v2", CANARY_PODS)})
            custom = kubernetes.client.CustomObjectsApi(env.api)
            steps: list[Step] = []
            started = time.monotonic()
            with GatewayController(env.info.kubeconfig, env.state_dir / "gateway") as gateway:
                print(f"\nweights written by this script to HTTPRoute {NAMESPACE}/shop; data plane HAProxy at "
                      f"{gateway.url}; stable {STABLE_PODS} pods (v1), canary {CANARY_PODS} pod (v2): a replica "
                      f"split would give the canary {CANARY_PODS / (STABLE_PODS + CANARY_PODS):.0%}")
                print(f"{args.requests} requests per step at {args.rps:g}/s; PASS: canary count within the "
                      f"central {CONFIDENCE:.0%} range of Binomial(n, requested)\n")
                print("requested  answered  canary  measured  95 % interval      99 % range  route->served")
                for weight in weights:
                    steps.append(run_step(custom, gateway, weight, args.requests, args.rps))
                    print(row(steps[-1]), flush=True)
                errors = list(gateway.errors)
            passed = sum(step.passed for step in steps)
            print(f"\n{passed} of {len(steps)} steps PASS in {time.monotonic() - started:.0f} s; "
                  f"controller errors: {errors or 'none'}")
            env.ok = not errors
            return 0 if env.ok else 1
        finally:
            if not reused_node:
                node.stop()


if __name__ == "__main__":
    sys.exit(main())
