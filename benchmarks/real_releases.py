"""The release numbers on real pods: blast radius, reaction and false rollbacks, measured from outside.

    flock /tmp/ballast-node.lock python -m benchmarks.real_releases [--only blast|reaction|false ...]
        [--rps 100] [--error-ratio 0.5] [--window 60] [--runs 5] [--releases 20] [--deployments 4]
        [--state-dir DIR]

One local control plane with the real node beside it (tests/harness/node.py: containerd, kubelet,
kube-proxy, kube-scheduler; Prometheus scrapes the pods through pod discovery) and one real ``ballast
operator run`` serve the whole run. Every workload is the demo app (deploy/kind/demo-app) as real pods:
a version is its env (``VERSION``, ``ERROR_RATIO``), so every change is a new pod template with the same
image. Users are the harness's load generators (tests/harness/loadgen.py), one per Service, sending
requests at a fixed rate to the Service's ClusterIP through kube-proxy, each on a new connection, and
counting what came back themselves: a 5xx, or no answer within 2 s. The pods' own counters are what
Ballast judges; the load generators are the witnesses of what users saw.

One ReleasePolicy governs the ``real-*`` namespaces except ``real-blast-plain``, with fast settings for
tier ``high``: steps 5/25/50 %, 5 s each, 20 requests minimum, one failed analysis rolls back, a canary
not ready within 60 s rolls back. Every Deployment and Release event is watched (benchmarks/watching.py)
and time-stamped on receipt.

- blast: a bad change (``ERROR_RATIO`` ``--error-ratio``; the old version answers no errors, so every 5xx
  is the change's) applied in one run to two identical 20-replica Deployments, each behind its own
  Service with its own load generator at ``--rps``: one governed (5 % first step: one canary pod of 21),
  one in a namespace nothing governs (a plain rolling update, maxSurge and maxUnavailable 25 %). Counted:
  the 5xx answers users got to the requests they sent in the ``--window`` seconds after each change
  (requests unanswered within 2 s are printed apart: on a loaded machine they are timeouts on either
  side). Target: Ballast's count under 2 % of the plain one's.
- reaction: ``--runs`` bad releases of a 3-replica Deployment, one after another. Reaction = from the
  failing verdict being written (the first Release event with phase ``RollingBack``: the operator records
  the Fail analysis and that phase in one status write, before it acts) to the rollback written (the later
  of the canary Deployment's ``DELETED`` event and the first stable Deployment event with the old template
  back and ``spec.paused`` false). Target: under 1 s (judged on the max). Also printed, not judged: the
  time from the first 5xx a user saw to that verdict (detection: the canary's requests must reach the
  tier's minimum and Prometheus must scrape them).
- false: ``--releases`` good releases (0.5 % errors on the old and the new version alike), spread over
  ``--deployments`` 3-replica Deployments that release in parallel, each one after another (a next
  release only once the last has rolled out). Target: none ends ``RolledBack``.

Not a test: it prints figures, the machine's load and PASS/MISS per target, and exits 1 only when the run
itself failed. It starts the real node, so run it under the node lock.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import kubernetes

from ballast.api.common import GROUP, VERSION
from ballast.api.vocabulary import CANARY_TRACK, TRACK_LABEL
from benchmarks.admission_latency import scrape
from benchmarks.environment import Environment, environment
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
from tests.harness import images, wait_for
from tests.harness.cluster import LocalCluster
from tests.harness.loadgen import LoadGenerator, errors
from tests.harness.node import LocalNode, NodeUnavailable
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, release_policy, service_ownership
from tests.integration.realpods import demo_pod_template, ready_endpoints, service, serving
from tests.integration.releasing import FAST_TIER, created

PARTS = ("blast", "reaction", "false")
POLICY = "bench-real-releases"
SELECTOR = {"ballast.dev/bench": "real-releases"}
NS_BLAST, NS_PLAIN, NS_REACTION, NS_FALSE = "real-blast", "real-blast-plain", "real-reaction", "real-false"
GOVERNED_NAMESPACES = (NS_BLAST, NS_REACTION, NS_FALSE)
TIER = "high"
REAL_TIER = {**FAST_TIER, "steps": [5, 25, 50], "stepDuration": "5s", "readyDeadline": "60s"}
"""5 s steps: a canary of the small Deployments serves the 20 requests a verdict needs within one step.
60 s to get ready: at a load average of 30 on 2 cores (other work beside), a real canary pod once took
longer than 25 s, and the release ended CanaryNotReady instead of being judged on its errors."""
STABLE_VERSION = "1"
BLAST_REPLICAS = 20
SMALL_REPLICAS = 3
SMALL_RPS = 30.0
"""Users of each small Deployment: with 3 stable pods the one canary pod gets ~7 requests a second."""
BACKGROUND_ERRORS = 0.005
"""The false part's noisy baseline: every version, old and new, answers 0.5 % of requests with 500."""
TARGET_BLAST_RATIO = 0.02
AIM_BLAST_RATIO = 0.002
"""The spec's aim beyond the bar (Ballast reaches about 0.4 % on simulated pods): printed, not judged."""
BALLAST, PLAIN = "Ballast (canary, then rollback)", "plain rolling update"
ANSWER_TIMEOUT = 2.0
"""tests.harness.loadgen.hit() gives up on a request after this long (then counts it unanswered)."""


@dataclass
class Bench:
    env: Environment
    watch: ClusterWatch
    run_id: str

    @property
    def apps(self) -> kubernetes.client.AppsV1Api:
        return kubernetes.client.AppsV1Api(self.env.api)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.env.api)

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.env.api)


@dataclass
class Shop:
    """One Deployment of the demo app on real pods, its Service, and the users sending it requests."""

    namespace: str
    name: str
    replicas: int
    load: LoadGenerator


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


# -- setup ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def real_node(env: Environment) -> Iterator[LocalNode]:
    """The real node beside the benchmark's cluster, with the demo app's image imported; a node that was
    already running (a reused ``make cluster-up NODE=1`` cluster) is left running."""
    node = LocalNode(LocalCluster(env.state_dir))
    reused = node.info is not None and all(node.status().values()) and node.ready()
    print("starting the real node (a first run builds the demo app's image, about a minute) ...", flush=True)
    try:
        node.start()
        images.import_archive(node.ctr, images.demo_app_archive())
        yield node
    finally:
        if not reused:
            node.stop()


def prepare_cluster(bench: Bench, max_concurrent: int) -> None:
    """The namespaces and the policy (ServiceOwnerships, Deployments and Services come with each part)."""
    for name in (*GOVERNED_NAMESPACES, NS_PLAIN):
        labels = SELECTOR if name in GOVERNED_NAMESPACES else {}
        with contextlib.suppress(kubernetes.client.ApiException):  # 409: reused cluster
            bench.core.create_namespace({"metadata": {"name": name, "labels": labels}})
    tier = {**REAL_TIER, "maxConcurrent": max_concurrent}
    with contextlib.suppress(kubernetes.client.ApiException):
        bench.custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies",
                                                  release_policy(POLICY, SELECTOR, tiers={TIER: tier}))


def create_deployment(bench: Bench, namespace: str, name: str, replicas: int, error_ratio: float) -> None:
    """Version 1 of the demo app as ``name`` (under a ServiceOwnership of tier high when governed)."""
    if namespace in GOVERNED_NAMESPACES:
        with contextlib.suppress(kubernetes.client.ApiException):
            bench.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                                         service_ownership(name, {"app": name}, riskTier=TIER))
    body = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": OWNERSHIP_ANNOTATIONS},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": demo_pod_template({"app": name}, version=STABLE_VERSION, error_ratio=error_ratio)},
    }
    wait_for(lambda: created(bench.apps, namespace, body), 60, f"{namespace}/{name} was never admitted")


def serve(bench: Bench, namespace: str, name: str, replicas: int, rps: float) -> Shop:
    """Once ``name`` is created: its Service, routed to every replica, Ballast holding it when governed,
    and users sending ``rps`` requests a second to it."""
    url = service(bench.core, namespace, name, {"app": name})
    # Real pods start on a shared 2-core machine: 20 of them take a while.
    serving(url, lambda: ready_endpoints(bench.core, namespace, name), replicas, timeout=60 + 6 * replicas)
    if namespace in GOVERNED_NAMESPACES:
        wait_for(lambda: held(bench.apps, namespace, name), 60,
                 f"the pause webhook never took over template changes of {namespace}/{name}")
    elif held(bench.apps, namespace, name):
        raise RuntimeError(f"{namespace} is not ungoverned: a template change came back paused")
    load = LoadGenerator(f"{url}/", rps=rps)
    load.start()
    return Shop(namespace, name, replicas, load)


def warm_up(shops: list[Shop], seconds: float = 5.0) -> None:
    """Wait until every Service has had ``seconds`` of users, so a background of errors would show."""
    for shop in shops:
        wait_for(lambda s=shop: sum(s.load.counts().values()) >= s.load.rps * seconds, seconds * 4 + 10,
                 f"the users of {shop.namespace}/{shop.name} sent too few requests")


def tear_down(bench: Bench, shops: list[Shop], namespaces: list[str]) -> None:
    """Stop the users, delete the part's namespaces and wait until their pods are gone, so the next part
    does not share the machine with them."""
    for shop in shops:
        shop.load.stop()
    for namespace in namespaces:
        with contextlib.suppress(kubernetes.client.ApiException):
            bench.core.delete_namespace(namespace)
    for namespace in namespaces:
        wait_for(lambda n=namespace: not bench.core.list_namespaced_pod(n).items, 120,
                 f"the pods of {namespace} were never deleted")


def ship(bench: Bench, shop: Shop, version: str, error_ratio: float) -> float:
    """A new version of the app (its env); time.monotonic() when it was shipped."""
    env = [{"name": "VERSION", "value": version}, {"name": "ERROR_RATIO", "value": str(error_ratio)}]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "env": env}]}}}}
    shipped = time.monotonic()
    patched = bench.apps.patch_namespaced_deployment(shop.name, shop.namespace, patch)
    if bool(patched.spec.paused) != (shop.namespace in GOVERNED_NAMESPACES):
        raise RuntimeError(f"{shop.namespace}/{shop.name}: paused={patched.spec.paused} after a template change")
    return shipped


def canary_pods(bench: Bench, namespace: str) -> list[kubernetes.client.V1Pod]:
    return bench.core.list_namespaced_pod(namespace, label_selector=f"{TRACK_LABEL}={CANARY_TRACK}").items


def version_of(body: dict[str, Any]) -> str:
    env = body["spec"]["template"]["spec"]["containers"][0].get("env") or []
    return next((e.get("value", "") for e in env if e["name"] == "VERSION"), "")


def on_version(version: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: version_of(body) == version


def rolled_out(body: dict[str, Any] | None, version: str, replicas: int) -> bool:
    """Whether a Deployment body shows every replica on ``version``, available and un-paused."""
    if body is None or body["spec"].get("paused") or version_of(body) != version:
        return False
    status = body.get("status") or {}
    return (status.get("observedGeneration", 0) >= body["metadata"].get("generation", 0)
            and status.get("updatedReplicas") == status.get("availableReplicas") == status.get("replicas")
            == replicas)


def wall_from_monotonic(moment: float) -> float:
    """time.time() of a time.monotonic() moment (the watches stamp wall time, the load generators monotonic)."""
    return time.time() - (time.monotonic() - moment)


# -- blast radius --------------------------------------------------------------------------------------


def run_blast(bench: Bench, rps: float, error_ratio: float, window: float) -> bool:
    print(f"blast: {BLAST_REPLICAS}-replica shop in {NS_BLAST} (Ballast, first step {REAL_TIER['steps'][0]}%) and "
          f"in {NS_PLAIN} (plain rolling update), {rps:g} requests/s of users each; both changed to a version "
          f"with ERROR_RATIO {error_ratio:g} (the old one has none)", flush=True)
    for namespace in (NS_BLAST, NS_PLAIN):
        create_deployment(bench, namespace, "shop", BLAST_REPLICAS, 0.0)
    started = time.monotonic()
    shops = {label: serve(bench, ns, "shop", BLAST_REPLICAS, rps) for label, ns in ((BALLAST, NS_BLAST),
                                                                                     (PLAIN, NS_PLAIN))}
    print(f"  {2 * BLAST_REPLICAS} real pods serving after {time.monotonic() - started:.0f} s; {machine_load()}",
          flush=True)
    try:
        warm_up(list(shops.values()))
        background = {label: shop.load.counts() for label, shop in shops.items()}
        mark = bench.watch.mark()
        shipped = {label: ship(bench, shop, f"bad-{bench.run_id}", error_ratio) for label, shop in shops.items()}
        release = bench.watch.final_release_since(mark, NS_BLAST, "shop")
        row = rolled_back_release(bench.watch, mark, release, "shop", on_version(STABLE_VERSION))
        end = max(shipped.values()) + window
        # Every request sent before `end` has its answer once one sent after end + the answer timeout has.
        for shop in shops.values():
            wait_for(lambda s=shop: any(a.sent > end + ANSWER_TIMEOUT for a in s.load.answers(since=end)),
                     window + 30, f"the users of {shop.namespace}/shop stopped sending")
        seen = {label: shop.load.counts(since=shipped[label], until=shipped[label] + window)
                for label, shop in shops.items()}
        plain_done = next((e.at for e in bench.watch.since(mark) if (e.kind, e.namespace, e.name) ==
                           ("Deployment", NS_PLAIN, "shop") and rolled_out(e.body, f"bad-{bench.run_id}",
                                                                             BLAST_REPLICAS)), None)
        ballast_5xx = [a.sent for a in shops[BALLAST].load.answers(since=shipped[BALLAST]) if a.status >= 500]
        return report_blast(row, shipped, seen, background, window, plain_done,
                            min(ballast_5xx, default=None), error_ratio)
    finally:
        tear_down(bench, list(shops.values()), [NS_BLAST, NS_PLAIN])


def report_blast(row: RolledBackRelease, shipped: dict[str, float], seen: dict[str, dict[int, int]],
                 background: dict[str, dict[int, int]], window: float, plain_done: float | None,
                 first_5xx: float | None, error_ratio: float) -> bool:
    changed = wall_from_monotonic(shipped[BALLAST])
    timeline = [f"Ballast's release ended {row.outcome} (analyses {row.verdicts})"]
    if row.moments is not None:
        timeline.append(f"RollingBack {row.moments.failed - changed:.1f} s after the change, rollback written "
                        f"{row.moments.done - changed:.1f} s after it")
    if first_5xx is not None:
        timeline.append(f"its users' first 5xx {first_5xx - shipped[BALLAST]:.1f} s after it")
    timeline.append("the plain rollout had all 20 pods on the new version available "
                    + (f"{plain_done - wall_from_monotonic(shipped[PLAIN]):.1f} s after its change" if plain_done
                       else "never within the window"))
    print(f"\nBlast radius: the 5xx answers users got to the requests they sent in the {window:g} s after the "
          "change, counted by the load generators (requests nobody answered within "
          f"{ANSWER_TIMEOUT:g} s are shown apart)\n  " + ";\n  ".join(timeline) + "\n")
    print(f"{'deployment':<34}{'5xx':>7}{'no answer':>11}{'requests':>10}   before the change: 5xx / no answer / sent")
    for label, counts in seen.items():
        before = background[label]
        print(f"{label:<34}{server_errors(counts):>7}{counts.get(0, 0):>11}{sum(counts.values()):>10}   "
              f"{server_errors(before)} / {before.get(0, 0)} / {sum(before.values())}")
    if row.moments is None:
        print("  WARNING: Ballast did not roll the bad version back: no blast radius to compare")
        return False
    if not row.outcome.endswith("/AnalysisFailed"):
        print(f"  WARNING: Ballast rolled back for another reason than the canary's errors ({row.outcome}): a "
              "canary that never got ready served no users, so this run did not measure the blast radius. Run "
              "it again on a quieter machine.")
        return False
    if server_errors(seen[PLAIN]) <= 0:
        print(f"  WARNING: the plain rolling update's users got no 5xx at ERROR_RATIO {error_ratio:g}: "
              "the ratio is undefined")
        return False
    ratio = server_errors(seen[BALLAST]) / server_errors(seen[PLAIN])
    print(f"\nratio Ballast / plain (5xx users got): {ratio * 100:.2f}%")
    print(f"  target < {TARGET_BLAST_RATIO * 100:g}%: {ratio * 100:.2f}%  {verdict_mark(ratio < TARGET_BLAST_RATIO)}"
          f"  (the spec's aim, < {AIM_BLAST_RATIO * 100:g}%: {'met' if ratio < AIM_BLAST_RATIO else 'not met'})")
    if seen[BALLAST].get(0) or seen[PLAIN].get(0):
        print(f"with the unanswered requests counted too: {errors(seen[BALLAST]) / errors(seen[PLAIN]) * 100:.2f}% "
              "(on a loaded machine these are mostly timeouts on either side, not the change)")
    return True


def server_errors(counts: dict[int, int]) -> int:
    return sum(n for status, n in counts.items() if status >= 500)


# -- reaction ------------------------------------------------------------------------------------------


def run_reaction(bench: Bench, runs: int, error_ratio: float) -> bool:
    create_deployment(bench, NS_REACTION, "shop", SMALL_REPLICAS, 0.0)
    shop = serve(bench, NS_REACTION, "shop", SMALL_REPLICAS, SMALL_RPS)
    print(f"reaction: {runs} bad releases (ERROR_RATIO {error_ratio:g}) of {NS_REACTION}/shop, {SMALL_REPLICAS} "
          f"replicas, {SMALL_RPS:g} requests/s of users, one after another", flush=True)
    try:
        before = scrape(bench.env.operator.metrics_url)
        rows: list[RolledBackRelease] = []
        detections = []
        for i in range(runs):
            mark = bench.watch.mark()
            shipped = ship(bench, shop, f"bad-{bench.run_id}-{i}", error_ratio)
            release = bench.watch.final_release_since(mark, NS_REACTION, "shop")
            rows.append(rolled_back_release(bench.watch, mark, release, "shop", on_version(STABLE_VERSION)))
            first_5xx = min((a.sent for a in shop.load.answers(since=shipped) if a.status >= 500), default=None)
            if rows[-1].moments is not None and first_5xx is not None:
                detections.append((rows[-1].moments.failed - wall_from_monotonic(shipped),
                                   rows[-1].moments.failed - wall_from_monotonic(first_5xx)))
            bench.watch.wait(lambda: rolled_out(bench.watch.latest.get(("Deployment", NS_REACTION, "shop")),
                                                STABLE_VERSION, SMALL_REPLICAS), 60,
                             f"{NS_REACTION}/shop never settled after release {i}")
            # A deleted canary's pods answer while they drain: the next run's first 5xx must be its own.
            wait_for(lambda: not canary_pods(bench, NS_REACTION), 60, f"the canary pods of release {i} never went")
        after = scrape(bench.env.operator.metrics_url)
        ok = report_reactions(rows)
        for i, (from_change, from_5xx) in enumerate(detections, 1):
            print(f"  run {i}: failing verdict {from_change:.1f} s after the change, {from_5xx:.1f} s after the "
                  "first 5xx a user saw (detection, not judged)")
        print(actuation_histogram(before, after))
        return ok
    finally:
        tear_down(bench, [shop], [NS_REACTION])


# -- false rollbacks -----------------------------------------------------------------------------------


def release_sequentially(bench: Bench, shop: Shop, count: int) -> list[dict[str, Any]]:
    """``count`` good releases of ``shop``, each once the last one's outcome has rolled out."""
    done = []
    running = STABLE_VERSION
    key = ("Deployment", shop.namespace, shop.name)
    for i in range(count):
        version = f"good-{bench.run_id}-{i}"
        mark = bench.watch.mark()
        ship(bench, shop, version, BACKGROUND_ERRORS)
        release = bench.watch.final_release_since(mark, shop.namespace, shop.name)
        done.append(release)
        if release["status"]["phase"] == "Promoted":
            running = version
        bench.watch.wait(lambda v=running: rolled_out(bench.watch.latest.get(key), v, shop.replicas), 120,
                         f"{shop.namespace}/{shop.name} never rolled out {running}")
    return done


def run_false(bench: Bench, releases: int, deployments: int) -> bool:
    names = [f"svc-{d}" for d in range(deployments)]
    for name in names:
        create_deployment(bench, NS_FALSE, name, SMALL_REPLICAS, BACKGROUND_ERRORS)
    shops = [serve(bench, NS_FALSE, name, SMALL_REPLICAS, SMALL_RPS) for name in names]
    shares = [releases // deployments + (1 if d < releases % deployments else 0) for d in range(deployments)]
    print(f"false: {releases} good releases ({BACKGROUND_ERRORS:.1%} errors on the old and the new version) over "
          f"{deployments} {SMALL_REPLICAS}-replica Deployments in {NS_FALSE} ({SMALL_RPS:g} requests/s of users "
          "each), in parallel, each one after another", flush=True)
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=deployments, thread_name_prefix="release") as pool:
            futures = {shop.name: pool.submit(release_sequentially, bench, shop, share)
                       for shop, share in zip(shops, shares, strict=True)}
            results = {name: future.result() for name, future in futures.items()}
        wall = time.monotonic() - started
        users = {shop.name: shop.load.counts(since=started) for shop in shops}
        return report_false(results, users, wall, releases)
    finally:
        tear_down(bench, shops, [NS_FALSE])


def report_false(results: dict[str, list[dict[str, Any]]], users: dict[str, dict[int, int]], wall: float,
                 releases: int) -> bool:
    print(f"\nFalse rollbacks: {releases} good releases on real pods, steps {REAL_TIER['steps']} at "
          f"{REAL_TIER['stepDuration']} each, every release's rollout included; users failed: requests answered "
          f"5xx or not at all, of all they sent ({BACKGROUND_ERRORS:.1%} expected)\n")
    failed = {name: f"{errors(counts)}/{sum(counts.values())}" for name, counts in users.items()}
    return not report_false_rollbacks(results, wall, failed)


# -- main ----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_releases", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable)")
    parser.add_argument("--rps", type=float, default=100.0,
                        help="blast: requests/s of users, to each of the two Services (default %(default)s)")
    parser.add_argument("--error-ratio", type=float, default=0.5,
                        help="blast and reaction: the bad version's ERROR_RATIO (default %(default)s)")
    parser.add_argument("--window", type=float, default=60.0,
                        help="blast: seconds after the change in which failures count (default %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="reaction: bad releases, one after another")
    parser.add_argument("--releases", type=int, default=20, help="false: good releases in total")
    parser.add_argument("--deployments", type=int, default=4, help="false: Deployments releasing in parallel")
    parser.add_argument("--state-dir", help="cluster state dir (default: a fresh temp dir, removed on success); "
                        "a healthy cluster already running there is reused and left running")
    args = parser.parse_args(argv)
    parts = [p for p in PARTS if p in (args.only or PARTS)]

    begun = time.monotonic()
    try:
        return run(args, parts, begun)
    except NodeUnavailable as exc:
        print(f"The real node cannot run on this machine, so there are no real pods to measure: {exc}",
              file=sys.stderr)
        return 1


def run(args: argparse.Namespace, parts: list[str], begun: float) -> int:
    with environment(args.state_dir, [POLICY], [*GOVERNED_NAMESPACES, NS_PLAIN]) as env, real_node(env):
        watch = ClusterWatch(env.info.kubeconfig)
        watch.start()
        try:
            bench = Bench(env, watch, uuid.uuid4().hex[:6])
            prepare_cluster(bench, max_concurrent=max(5, args.deployments))
            print(f"ready after {time.monotonic() - begun:.0f} s; {machine_load()}", flush=True)
            ok = True
            for part in parts:
                print(f"\n=== {part} ===", flush=True)
                started = time.monotonic()
                if part == "blast":
                    ok &= run_blast(bench, args.rps, args.error_ratio, args.window)
                elif part == "reaction":
                    ok &= run_reaction(bench, args.runs, args.error_ratio)
                else:
                    ok &= run_false(bench, args.releases, args.deployments)
                print(f"({part} took {time.monotonic() - started:.0f} s; {machine_load()})", flush=True)
            if watch.relists:
                print(f"note: the watches had to list again {watch.relists} time(s); events in those gaps were lost")
        finally:
            watch.stop()
        env.ok = ok
    print(f"(the whole run took {time.monotonic() - begun:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
