"""The release numbers that stay on simulated pods: reaction while a provider hangs, and latency judged.

    python -m benchmarks.release_numbers [--only hung|jitter|slow ...] [--runs 5] [--releases 20]
                                         [--deployments 5] [--step-duration 6s] [--state-dir DIR]

Blast radius, reaction and false rollbacks are measured on real pods (benchmarks/real_releases.py). What
is left here would, on real pods, measure the machine rather than Ballast: eight releases kept waiting on
a hung provider need only their Release objects, not 24 real pods; and latency judged against a baseline
needs latencies that are what the version says (trafficsim's), not a 2-core machine's scheduling delays
added to every request of the demo app.

One local control plane (tests/harness/cluster.py: real kube-apiserver, kube-controller-manager and
Prometheus with a 1 s scrape; simulated pods and users) and one real ``ballast operator run`` serve the
whole run. One ReleasePolicy governs ``bench-reaction`` and ``bench-false`` with fast canary settings for
tier ``high``: steps 5/25/50 %, 6 s per step (``--step-duration``), 20 requests minimum, one failed analysis
rolls back, and p99 latency judged (100 ms over the baseline allowed, 100 requests minimum: 6 s is what the
5 % step's one canary pod needs to serve them). Every pod serves 20 requests/s (trafficsim); a change sets
the pod template's ``sim.ballast.dev/error-ratio`` to 0.2 (bad) or 0.005 (good) and a new image tag, so
every change is a new template (a rolled-back template is refused until ``ballast.dev/retry`` changes).
Every Deployment and Release event is watched and time-stamped on receipt (benchmarks/watching.py).

- hung: ``--runs`` bad releases of a 3-replica Deployment, one after another, while eight releases of another
  namespace look at their canaries through a second "Prometheus" that accepts connections and never
  answers (the fault proxy of the tests). Reaction as real_releases defines it (benchmarks/watching.py):
  from the Release's first ``RollingBack`` event to the canary gone and the template restored. Target:
  under 1 s (judged on the max).
- jitter: ``--releases`` good releases (0.5 % errors on the baseline and on the canary; every version
  answers in 30 ms +-90 %, baseline and canary alike), spread over ``--deployments`` 4-replica
  Deployments that release in parallel, each sequentially. Target: none ends RolledBack.
- slow: ``--runs`` releases of a 4-replica Deployment answering in 30 ms +-90 %, each a version 200 ms
  slower on every request (230 ms +-90 %). Prints the step whose verdict caught it, the canary's requests
  in that window and both p99s. Target: every one caught at the first step.

Not a test: it prints figures and PASS/MISS per target, and exits 1 only when the run itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kubernetes

from ballast.api.common import GROUP, VERSION
from benchmarks.admission_latency import scrape
from benchmarks.environment import environment
from benchmarks.watching import (
    ClusterWatch,
    RolledBackRelease,
    actuation_histogram,
    held,
    report_false_rollbacks,
    report_reactions,
    rolled_back_release,
    verdict_mark,
)
from tests.harness import wait_for
from tests.harness.cluster import ClusterInfo
from tests.harness.faultproxy import FaultProxy
from tests.harness.operator import OperatorProcess
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy, service_ownership
from tests.integration.releasing import BAD, FAST_TIER, GOOD, change, created

PARTS = ("hung", "jitter", "slow")
POLICY = "bench-release-numbers"
SELECTOR = {"ballast.dev/bench": "release-numbers"}
HUNG_POLICY, NS_HUNG = "bench-hung-provider", "bench-hung"
HUNG_SELECTOR = {"ballast.dev/bench": "hung-provider"}
HUNG_RELEASES = 8  # more than the threads of one provider: they would starve a shared pool
NS_REACTION, NS_FALSE = "bench-reaction", "bench-false"
GOVERNED_NAMESPACES = (NS_REACTION, NS_FALSE)
TIER = "high"
STEPS = [5, 25, 50]
STEP_DURATION = "6s"
STABLE_IMAGE = "registry.example.com/app:1.0"  # what tests.integration.kube.deployment() runs
FALSE_REPLICAS = 4
JITTERY = {"sim.ballast.dev/latency-ms": "30", "sim.ballast.dev/latency-jitter": "0.9"}
"""Every version of the jitter part answers in 30 ms +-90 % (3 to 57 ms), baseline and canary."""
LATENCY_LIMITS = {"quantile": 0.99, "maxIncrease": "100ms", "minSamples": 100}
"""The tier also judges p99 latency (100 ms more than the baseline allowed)."""
SLOW = {"sim.ballast.dev/latency-ms": "230", "sim.ballast.dev/latency-jitter": "0.9"}
"""The slow part's versions: 200 ms more than JITTERY on average, as jittery."""


# -- setup ---------------------------------------------------------------------------------------------


@dataclass
class Bench:
    info: ClusterInfo
    api: kubernetes.client.ApiClient
    operator: OperatorProcess
    watch: ClusterWatch
    run_id: str

    @property
    def apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.api)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)


def prepare_cluster(api: kubernetes.client.ApiClient, max_concurrent: int, step_duration: str) -> None:
    """The namespaces and the policy (ServiceOwnerships and Deployments come with each part)."""
    core = kubernetes.client.CoreV1Api(api)
    for name in (*GOVERNED_NAMESPACES, NS_HUNG):
        labels = SELECTOR if name in GOVERNED_NAMESPACES else HUNG_SELECTOR
        with contextlib.suppress(kubernetes.client.ApiException):  # 409: reused cluster
            core.create_namespace({"metadata": {"name": name, "labels": labels}})
    tier = {**FAST_TIER, "steps": STEPS, "maxConcurrent": max_concurrent, "stepDuration": step_duration,
            "latency": LATENCY_LIMITS}
    with contextlib.suppress(kubernetes.client.ApiException):
        kubernetes.client.CustomObjectsApi(api).create_cluster_custom_object(
            GROUP, VERSION, "releasepolicies", release_policy(POLICY, SELECTOR, tiers={TIER: tier}))


def create_service(bench: Bench, namespace: str, names: list[str], replicas: int, group: str,
                   traffic: dict[str, str] | None = None, owner: str = "payments") -> None:
    """A ServiceOwnership of tier high over ``names``, the Deployments, all available, and the pause webhook
    live for each: a dry-run template change comes back paused."""
    apps = bench.apps
    labels_of = {name: {"app": name, "bench-group": group} for name in names}
    with contextlib.suppress(kubernetes.client.ApiException):
        bench.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                                     service_ownership(group, {"bench-group": group},
                                                                       riskTier=TIER, owner=owner))
    for name in names:
        body = deployment(name, labels_of[name], replicas=replicas,
                          annotations={**OWNERSHIP_ANNOTATIONS, "ballast.dev/owner": owner},
                          template_annotations={**GOOD, **(traffic or {})})
        wait_for(lambda b=body: created(apps, namespace, b), 60, f"{namespace}/{name} was never admitted")
    for name in names:
        wait_for(lambda n=name: (apps.read_namespaced_deployment(n, namespace).status.available_replicas or 0)
                 == replicas, 120, f"{namespace}/{name} never became available")
        wait_for(lambda n=name: held(apps, namespace, n), 60,
                 f"the pause webhook never took over template changes of {namespace}/{name}")


# -- reaction while a provider hangs --------------------------------------------------------------------


def run_hung(bench: Bench, runs: int) -> bool:
    """Reaction while another provider hangs: releases of another namespace look at their canaries through a
    Prometheus that accepts connections and never answers (tests/harness/faultproxy.py), one look each in
    flight at all times, while bad releases of ``bench-reaction`` run against the real one."""
    create_service(bench, NS_REACTION, ["shop"], 3, "shop")
    with FaultProxy(bench.info.prometheus_url, slow_seconds=3600) as proxy:
        proxy.fault = "slow"
        tier = {**FAST_TIER, "steps": STEPS, "maxConcurrent": HUNG_RELEASES, "stepDuration": "10m"}
        bench.custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
            HUNG_POLICY, HUNG_SELECTOR, tiers={TIER: tier}, prometheus={"url": proxy.url}))
        names = [f"hung-{i}" for i in range(HUNG_RELEASES)]
        # Another team's releases: the reaction's team is not held back by the concurrency limit.
        create_service(bench, NS_HUNG, names, 2, "hung", owner="search")
        for name in names:
            change(bench.apps, NS_HUNG, f"app:hung-{bench.run_id}", GOOD, name=name)
        wait_for(lambda: proxy.requests >= HUNG_RELEASES, 60, "the releases never asked the hung provider")
        print(f"hung: {HUNG_RELEASES} releases in {NS_HUNG} wait on a Prometheus that never answers "
              f"({proxy.requests} requests hanging); {runs} bad releases of {NS_REACTION}/shop meanwhile",
              flush=True)
        ok = measure_rollbacks(bench, runs)
        print(f"(the hung provider was asked {proxy.requests} times in all: its circuit breaker keeps it from "
              "being asked every second per release)")
        return ok


def measure_rollbacks(bench: Bench, runs: int) -> bool:
    before = scrape(bench.operator.metrics_url)
    rows: list[RolledBackRelease] = []
    for i in range(runs):
        image = f"app:bad-{bench.run_id}-{i}"  # a new template each time: none was rolled back yet
        mark = bench.watch.mark()
        change(bench.apps, NS_REACTION, image, BAD)
        release = bench.watch.final_release(NS_REACTION, "shop", image)
        rows.append(rolled_back_release(bench.watch, mark, release, "shop", restored_stable_image))
    after = scrape(bench.operator.metrics_url)
    ok = report_reactions(rows)
    print(actuation_histogram(before, after))
    return ok


def restored_stable_image(body: dict[str, Any]) -> bool:
    return bool(body["spec"]["template"]["spec"]["containers"][0]["image"] == STABLE_IMAGE)


# -- no false rollbacks with latency judged ---------------------------------------------------------------


def release_sequentially(bench: Bench, name: str, count: int, traffic: dict[str, str]) -> list[dict[str, Any]]:
    api = kubernetes.config.new_client_from_config(config_file=bench.info.kubeconfig)  # one client per thread
    apps = kubernetes.client.AppsV1Api(api)
    done = []
    for i in range(count):
        image = f"app:good-{bench.run_id}-{name}-{i}"
        change(apps, NS_FALSE, image, traffic, name=name)
        done.append(bench.watch.final_release(NS_FALSE, name, image))
    return done


def run_jitter(bench: Bench, releases: int, deployments: int, step_duration: str) -> bool:
    names = [f"svc-{d}" for d in range(deployments)]
    traffic = {**GOOD, **JITTERY}
    create_service(bench, NS_FALSE, names, FALSE_REPLICAS, "svc", traffic=traffic)
    shares = [releases // deployments + (1 if d < releases % deployments else 0) for d in range(deployments)]
    jitter = f"{JITTERY['sim.ballast.dev/latency-ms']} ms +-{float(JITTERY['sim.ballast.dev/latency-jitter']):.0%}"
    print(f"jitter: {releases} good releases (0.5% errors on baseline and canary; p99 latency judged, every "
          f"version {jitter}) over {deployments} {FALSE_REPLICAS}-replica Deployments in {NS_FALSE}, in parallel, "
          "each sequentially", flush=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=deployments, thread_name_prefix="release") as pool:
        futures = {name: pool.submit(release_sequentially, bench, name, share, traffic)
                   for name, share in zip(names, shares, strict=True)}
        results = {name: future.result() for name, future in futures.items()}
    wall = time.monotonic() - started

    print(f"\nFalse rollbacks: {releases} good releases, steps {STEPS} at {step_duration} each\n")
    report_false_rollbacks(results, wall)
    checks = Counter(c["verdict"] for items in results.values() for r in items
                     for a in r["status"].get("analyses") or [] for c in a.get("checks") or []
                     if c["name"] == "latency")
    print(f"  latency verdicts: {dict(checks)}")
    return True


# -- a +200 ms latency regression ---------------------------------------------------------------------------


def run_slow(bench: Bench, runs: int) -> bool:
    create_service(bench, NS_FALSE, ["slow"], FALSE_REPLICAS, "slow", traffic={**GOOD, **JITTERY})
    print(f"slow: {runs} releases of {NS_FALSE}/slow ({FALSE_REPLICAS} replicas, "
          f"{JITTERY['sim.ballast.dev/latency-ms']} ms +-90 %), each {SLOW['sim.ballast.dev/latency-ms']} ms "
          "+-90 %: +200 ms on every request", flush=True)
    print(f"\n{'run':<4}{'outcome':<28}{'caught at':<14}{'canary requests':>16}{'p99 canary':>12}"
          f"{'p99 baseline':>14}")
    caught_first = 0
    for i in range(runs):
        image = f"app:slow-{bench.run_id}-{i}"
        change(bench.apps, NS_FALSE, image, {**GOOD, **SLOW}, name="slow")
        status = bench.watch.final_release(NS_FALSE, "slow", image)["status"]
        failed = next((a for a in status.get("analyses") or [] if a["verdict"] == "Fail"), None)
        latency_check = next((c for c in (failed or {}).get("checks") or [] if c["name"] == "latency"), {})
        outcome = f"{status['phase']}/{status.get('reason', '')}"
        if failed is None or latency_check.get("verdict") != "Fail":
            print(f"{i + 1:<4}{outcome:<28}{'-':<14}")
            continue
        caught_first += failed["step"] == 0
        step = f"step {failed['step'] + 1} ({failed['weight']}%)"
        print(f"{i + 1:<4}{outcome:<28}{step:<14}"
              f"{latency_check.get('samples', 0):>16.0f}{latency_check.get('canary', 0) * 1000:>10.0f}ms"
              f"{latency_check.get('baseline', 0) * 1000:>12.0f}ms")
    print(f"\n  caught by the latency check at the first step: {caught_first} of {runs}  "
          f"{verdict_mark(caught_first == runs)}")
    return True


# -- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.release_numbers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable)")
    parser.add_argument("--runs", type=int, default=5, help="hung and slow: bad releases, one after another")
    parser.add_argument("--releases", type=int, default=20, help="jitter: good releases in total")
    parser.add_argument("--deployments", type=int, default=5, help="jitter: Deployments releasing in parallel")
    parser.add_argument("--step-duration", default=STEP_DURATION,
                        help="canary step duration of the policy, every part (default %(default)s)")
    parser.add_argument("--state-dir", help="cluster state dir (default: a fresh temp dir, removed on success); "
                        "a healthy cluster already running there is reused and left running")
    args = parser.parse_args(argv)
    parts = [p for p in PARTS if p in (args.only or PARTS)]

    with environment(args.state_dir, [POLICY, HUNG_POLICY], [*GOVERNED_NAMESPACES, NS_HUNG]) as env:
        prepare_cluster(env.api, max_concurrent=max(5, args.deployments), step_duration=args.step_duration)
        watch = ClusterWatch(env.info.kubeconfig)
        watch.start()
        try:
            bench = Bench(env.info, env.api, env.operator, watch, uuid.uuid4().hex[:6])
            ok = True
            for part in parts:
                print(f"\n=== {part} ===", flush=True)
                started = time.monotonic()
                if part == "hung":
                    ok &= run_hung(bench, args.runs)
                elif part == "jitter":
                    ok &= run_jitter(bench, args.releases, args.deployments, args.step_duration)
                else:
                    ok &= run_slow(bench, args.runs)
                print(f"({part} took {time.monotonic() - started:.0f} s)", flush=True)
            if watch.relists:
                print(f"note: the watches had to list again {watch.relists} time(s); events in those gaps were lost")
        finally:
            watch.stop()
        env.ok = ok
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
