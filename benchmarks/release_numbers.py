"""The release numbers of the spec: reaction, blast radius and false rollbacks, measured from outside.

    python -m benchmarks.release_numbers [--only reaction|hung|blast|false|slow ...] [--runs 5] [--releases 50]
                                         [--deployments 5] [--step-duration 4s] [--latency] [--state-dir DIR]

One local control plane (tests/harness/cluster.py: real kube-apiserver, kube-controller-manager and
Prometheus with a 1 s scrape; simulated pods and users) and one real ``ballast operator run`` serve the
whole run. One ReleasePolicy governs the ``bench-*`` namespaces (except ``bench-blast-plain``) with fast
canary settings for tier ``high``: steps 5/25/50 %, 4 s per step (``--step-duration``), 20 requests
minimum, one failed analysis rolls back. Every pod serves 20 requests/s (trafficsim); a change sets the
pod template's ``sim.ballast.dev/error-ratio`` to 0.2 (bad) or 0.005 (good) and a new image tag, so every
change is a new template (a rolled-back template is refused until ``ballast.dev/retry`` changes).

Every Deployment and Release event in the cluster is watched (kubernetes ``watch.Watch()`` streams in
two threads) and time-stamped on receipt; the benchmark waits on those events, not by polling (only
setup, the plain ReplicaSet's appearance and Prometheus' freshness are polled with ``wait_for``).

- reaction: ``--runs`` bad releases, one after another, of a 3-replica Deployment. From the failing
  verdict (the first Release event whose status shows phase ``RollingBack``; the operator records the
  Fail verdict and that phase in one status write before it acts) to the rollback being actuated: the
  later of the canary Deployment's DELETED event and the first stable Deployment event with the old
  image back and ``spec.paused`` false. Target: under 1 s (judged on the max). The operator's own
  ``ballast_rollback_actuation_seconds`` histogram is printed when its /metrics has it.
- hung: the reaction part again, while eight releases of another namespace look at their canaries through
  a second "Prometheus" that accepts connections and never answers (the fault proxy of the tests). Their
  looks hang on that provider's own threads; the target is the same: under 1 s.
- blast: the same bad change applied in one run to two identical 20-replica Deployments: one governed
  (tier starts at 5 %: one canary pod), one in a namespace nothing governs (a plain rolling update). The
  5xx served by pods running the new template, from the change until Ballast's rollback is actuated
  (the same interval for both), are read from Prometheus with ``prometheus_api_client``:
  ``sum(increase(http_requests_total{namespace=NS,code="500",pod=~REGEX}[Ns]))`` evaluated at the end,
  REGEX ``shop-canary-.*`` for Ballast and ``shop-<new pod-template-hash>-.*`` for the plain one.
  Target: Ballast's count under 5 % of the plain one. Beware two properties of the harness: trafficsim
  gives every pod 20 requests/s, so the one canary pod adds traffic instead of taking 1/21 of it (in
  steady state the ratio is 1/20 = 5 %, never below), and with 4 s steps the interval (~5.5 s) is about
  as long as the plain rollout's ramp to 20 new pods, which the ratio then mostly reflects.
- false: ``--releases`` good releases (0.5 % errors on the baseline and on the canary), spread over
  ``--deployments`` 4-replica Deployments that release in parallel, each sequentially. Target: none ends
  RolledBack. The verdict mix and the wall time are printed, and every rollback's analyses. With
  ``--latency`` the tier also judges p99 latency (100 ms over the baseline allowed, 100 requests minimum:
  use a ``--step-duration`` of 6s or more so the 5 % step's canary pod serves them) and every version
  answers in 30 ms +-90 %, baseline and canary alike: latency jitter on both sides.
- slow (with ``--latency``): ``--runs`` releases of a 4-replica Deployment answering in 30 ms +-90 %, each
  a version 200 ms slower on every request (230 ms +-90 %). Prints the step whose verdict caught it, the
  canary's requests in that window and both p99s. Target: every one caught at the first step.

Not a test: it prints figures and PASS/MISS per target, and exits 1 only when the run itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import kubernetes
from prometheus_api_client import PrometheusConnect

from ballast.api.common import GROUP, VERSION
from benchmarks.admission_latency import delta, histogram_quantile, percentile, scrape
from benchmarks.environment import environment
from tests.harness import wait_for
from tests.harness.cluster import ClusterInfo
from tests.harness.faultproxy import FaultProxy
from tests.harness.operator import OperatorProcess
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy, service_ownership
from tests.integration.releasing import BAD, FAST_TIER, FINAL, GOOD, change, created

T = TypeVar("T")

PARTS = ("reaction", "hung", "blast", "false", "slow")
POLICY = "bench-release-numbers"
SELECTOR = {"ballast.dev/bench": "release-numbers"}
HUNG_POLICY, NS_HUNG = "bench-hung-provider", "bench-hung"
HUNG_SELECTOR = {"ballast.dev/bench": "hung-provider"}
HUNG_RELEASES = 8  # more than the threads of one provider: they would starve a shared pool
NS_REACTION, NS_BLAST, NS_PLAIN, NS_FALSE = "bench-reaction", "bench-blast", "bench-blast-plain", "bench-false"
GOVERNED_NAMESPACES = (NS_REACTION, NS_BLAST, NS_FALSE)
TIER = "high"
STEPS = [5, 25, 50]
STABLE_IMAGE = "registry.example.com/app:1.0"  # what tests.integration.kube.deployment() runs
TARGET_REACTION_S = 1.0
TARGET_BLAST_RATIO = 0.05
BLAST_REPLICAS = 20
FALSE_REPLICAS = 4
JITTERY = {"sim.ballast.dev/latency-ms": "30", "sim.ballast.dev/latency-jitter": "0.9"}
"""With --latency: every version of the false part answers in 30 ms +-90 % (3 to 57 ms), baseline and canary."""
LATENCY_LIMITS = {"quantile": 0.99, "maxIncrease": "100ms", "minSamples": 100}
"""With --latency: the tier also judges p99 latency (100 ms more than the baseline allowed)."""
SLOW = {"sim.ballast.dev/latency-ms": "230", "sim.ballast.dev/latency-jitter": "0.9"}
"""The slow part's versions: 200 ms more than JITTERY on average, as jittery."""
RELEASE_TIMEOUT = 180.0  # one release, from the change to a final phase
ACTUATION_METRIC = "ballast_rollback_actuation_seconds"
BALLAST, PLAIN = "Ballast (canary, then rollback)", "plain rolling update"
AFTERMATH = 5.0  # seconds after the rollback in which the deleted canary's pods may still serve
DEFAULT_RPS = 20.0  # trafficsim's default requests/s per pod


# -- watching ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One watch event, stamped with the wall-clock time it reached this process."""

    at: float
    kind: str  # "Deployment" or "Release"
    type: str  # ADDED, MODIFIED, DELETED
    namespace: str
    name: str
    body: dict[str, Any]


class ClusterWatch:
    """Every Deployment and Release event of the cluster, recorded on receipt; waits on a condition.

    Two threads run ``watch.Watch().stream`` (raw JSON, no model deserialisation), each resuming from the
    last resourceVersion it saw; a 410 (history compacted) makes it list again. ``wait`` re-evaluates a
    predicate whenever an event arrives, so nothing polls.
    """

    def __init__(self, kubeconfig: str) -> None:
        self.events: list[Seen] = []
        self.latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.relists = 0
        self._kubeconfig = kubeconfig
        self._cond = threading.Condition()  # its lock is reentrant: helpers may lock inside a predicate
        self._stop = threading.Event()
        self._listed = {kind: threading.Event() for kind in ("Deployment", "Release")}
        self._error: BaseException | None = None
        self._threads = [threading.Thread(target=self._run, args=(kind,), name=f"watch-{kind}", daemon=True)
                         for kind in self._listed]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        for kind, listed in self._listed.items():
            if not listed.wait(30):
                raise TimeoutError(f"the {kind} watch never listed: {self._error!r}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _endpoint(self, api: kubernetes.client.ApiClient, kind: str) -> tuple[Callable[..., Any], tuple[str, ...]]:
        if kind == "Deployment":
            return kubernetes.client.AppsV1Api(api).list_deployment_for_all_namespaces, ()
        return kubernetes.client.CustomObjectsApi(api).list_cluster_custom_object, (GROUP, VERSION, "releases")

    def _run(self, kind: str) -> None:
        try:
            api = kubernetes.config.new_client_from_config(config_file=self._kubeconfig)
            func, args = self._endpoint(api, kind)
            version: str | None = None
            while not self._stop.is_set():
                if version is None:
                    listing = json.loads(func(*args, _preload_content=False).data)
                    with self._cond:
                        for key in [k for k in self.latest if k[0] == kind]:
                            del self.latest[key]
                        for item in listing["items"]:
                            meta = item["metadata"]
                            self.latest[(kind, meta["namespace"], meta["name"])] = item
                        self._cond.notify_all()
                    version = listing["metadata"]["resourceVersion"]
                    self._listed[kind].set()
                try:
                    for event in kubernetes.watch.Watch().stream(
                            func, *args, resource_version=version, timeout_seconds=5, deserialize=False,
                            allow_watch_bookmarks=True):
                        at = time.time()
                        body = event["object"]
                        version = body["metadata"]["resourceVersion"]
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                            self._record(Seen(at, kind, event["type"], body["metadata"]["namespace"],
                                              body["metadata"]["name"], body))
                        if self._stop.is_set():
                            break
                except kubernetes.client.ApiException as error:
                    if error.status != 410:
                        raise
                    version = None  # compacted: list again (events in the gap are lost, and counted)
                    with self._cond:
                        self.relists += 1
        except BaseException as error:
            if not self._stop.is_set():
                with self._cond:
                    self._error = error
                    self._cond.notify_all()

    def _record(self, seen: Seen) -> None:
        with self._cond:
            self.events.append(seen)
            key = (seen.kind, seen.namespace, seen.name)
            if seen.type == "DELETED":
                self.latest.pop(key, None)
            else:
                self.latest[key] = seen.body
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def since(self, mark: int) -> list[Seen]:
        with self._cond:
            return self.events[mark:]

    def wait(self, predicate: Callable[[], T], timeout: float, message: str) -> T:
        """Evaluate ``predicate`` (in memory only: it runs under the lock) on every event until truthy."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._error is not None:
                    raise RuntimeError(f"a watch failed: {self._error!r}") from self._error
                if result := predicate():
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{message} (waited {timeout:g}s)")
                self._cond.wait(remaining)

    def release_of(self, namespace: str, deployment_name: str, image: str) -> dict[str, Any] | None:
        """The newest Release of the change of ``deployment_name`` to ``image``."""
        with self._cond:
            found = [body for (kind, ns, _), body in self.latest.items()
                     if kind == "Release" and ns == namespace
                     and body["spec"].get("deployment") == deployment_name and body["spec"].get("toImages") == [image]]
        return max(found, key=lambda b: b["metadata"]["creationTimestamp"] + b["metadata"]["name"], default=None)

    def final_release(self, namespace: str, deployment_name: str, image: str) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            release = self.release_of(namespace, deployment_name, image)
            return release if phase(release) in FINAL else None
        return self.wait(ended, RELEASE_TIMEOUT, f"the release of {namespace}/{deployment_name} to {image} never ended")


def phase(release: dict[str, Any] | None) -> str:
    return ((release or {}).get("status") or {}).get("phase") or ""


def image_and_paused(body: dict[str, Any]) -> tuple[str, bool]:
    spec = body["spec"]
    return spec["template"]["spec"]["containers"][0]["image"], bool(spec.get("paused"))


@dataclass(frozen=True)
class Rollback:
    """Wall-clock moments of one rollback, as the watches saw them."""

    failed: float  # the Release first showed phase RollingBack
    canary_gone: float  # the canary Deployment's DELETED event
    restored: float  # the stable Deployment back on the old image, un-paused

    @property
    def done(self) -> float:
        return max(self.canary_gone, self.restored)


def rollback_moments(watch: ClusterWatch, mark: int, namespace: str, deployment_name: str,
                     release_name: str) -> Rollback:
    """Find the rollback of ``release_name`` among the events since ``mark`` (waiting for stragglers)."""
    def found() -> Rollback | None:
        events = watch.since(mark)
        failed = next((e.at for e in events if e.kind == "Release" and e.namespace == namespace
                       and e.name == release_name and phase(e.body) == "RollingBack"), None)
        if failed is None:
            return None
        later = [e for e in events if e.kind == "Deployment" and e.namespace == namespace and e.at >= failed]
        gone = next((e.at for e in later if e.name == f"{deployment_name}-canary" and e.type == "DELETED"), None)
        restored = next((e.at for e in later if e.name == deployment_name and e.type == "MODIFIED"
                         and image_and_paused(e.body) == (STABLE_IMAGE, False)), None)
        return Rollback(failed, gone, restored) if gone is not None and restored is not None else None
    return watch.wait(found, 30, f"no RollingBack -> canary deleted + template restored seen for {release_name}")


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


def prepare_cluster(api: kubernetes.client.ApiClient, max_concurrent: int, step_duration: str,
                    latency: bool = False) -> None:
    """The namespaces and the policy (ServiceOwnerships and Deployments come with each part)."""
    core = kubernetes.client.CoreV1Api(api)
    for name in (*GOVERNED_NAMESPACES, NS_PLAIN, NS_HUNG):
        labels = SELECTOR if name in GOVERNED_NAMESPACES else HUNG_SELECTOR if name == NS_HUNG else {}
        with contextlib.suppress(kubernetes.client.ApiException):  # 409: reused cluster
            core.create_namespace({"metadata": {"name": name, "labels": labels}})
    tier = {**FAST_TIER, "steps": STEPS, "maxConcurrent": max_concurrent, "stepDuration": step_duration,
            **({"latency": LATENCY_LIMITS} if latency else {})}
    with contextlib.suppress(kubernetes.client.ApiException):
        kubernetes.client.CustomObjectsApi(api).create_cluster_custom_object(
            GROUP, VERSION, "releasepolicies", release_policy(POLICY, SELECTOR, tiers={TIER: tier}))


def create_service(bench: Bench, namespace: str, names: list[str], replicas: int, group: str,
                   traffic: dict[str, str] | None = None, owner: str = "payments") -> None:
    """A ServiceOwnership of tier high over ``names`` (when governed), the Deployments, all available, and
    (when governed) the pause webhook live for each: a dry-run template change comes back paused."""
    apps = bench.apps
    labels_of = {name: {"app": name, "bench-group": group} for name in names}
    if namespace in (*GOVERNED_NAMESPACES, NS_HUNG):
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
        if namespace in (*GOVERNED_NAMESPACES, NS_HUNG):
            wait_for(lambda n=name: held(apps, namespace, n), 60,
                     f"the pause webhook never took over template changes of {namespace}/{name}")
        elif held(apps, namespace, name):
            raise RuntimeError(f"{namespace} is not ungoverned: a template change came back paused")


def held(apps: kubernetes.client.AppsV1Api, namespace: str, name: str) -> bool:
    """Whether a dry-run template change comes back paused (Ballast's pause webhook holds the Deployment)."""
    probe = {"spec": {"template": {"metadata": {"annotations": {"probe": "1"}}}}}
    return bool(apps.patch_namespaced_deployment(name, namespace, probe, dry_run="All").spec.paused)


def actuation_histogram(before: dict, after: dict) -> str:
    """The operator's own rollback actuation figures over the part, or why there are none."""
    buckets = delta(before, after, f"{ACTUATION_METRIC}_bucket")
    pairs = [(float(dict(labels)["le"]), count) for labels, count in buckets.items()]
    count = max((c for _, c in pairs), default=0.0)
    if not pairs:
        return f"operator-side: the operator's /metrics has no {ACTUATION_METRIC} histogram (not measured)"
    if not count:
        return f"operator-side ({ACTUATION_METRIC}): no observations during the part"
    total = sum(delta(before, after, f"{ACTUATION_METRIC}_sum").values())
    top = min(le for le, c in pairs if c >= count)
    return (f"operator-side ({ACTUATION_METRIC}, decision to actions done, inside the operator): "
            f"{count:.0f} observations, mean {total / count * 1000:.1f} ms, "
            f"p50 ~{histogram_quantile(0.5, pairs) * 1000:.1f} ms (bucket estimate), max <= {top * 1000:g} ms")


def verdict_mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- reaction ------------------------------------------------------------------------------------------


def run_reaction(bench: Bench, runs: int) -> bool:
    create_service(bench, NS_REACTION, ["shop"], 3, "shop")
    print(f"reaction: {runs} bad releases (20% errors) of {NS_REACTION}/shop, 3 replicas, one after another",
          flush=True)
    return measure_rollbacks(bench, runs, "reaction")


def run_hung(bench: Bench, runs: int) -> bool:
    """Reaction while another provider hangs: releases of another namespace look at their canaries through a
    Prometheus that accepts connections and never answers (tests/harness/faultproxy.py), one look each in
    flight at all times, while the bad releases of the reaction part run against the real one."""
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
        ok = measure_rollbacks(bench, runs, "hung")
        print(f"(the hung provider was asked {proxy.requests} times in all: its circuit breaker keeps it from "
              "being asked every second per release)")
        return ok


def measure_rollbacks(bench: Bench, runs: int, part: str) -> bool:
    before = scrape(bench.operator.metrics_url)
    rows: list[tuple[str, str, str, Rollback | None]] = []
    for i in range(runs):
        image = f"app:bad-{bench.run_id}-{part}-{i}"  # a new template each time: none was rolled back yet
        mark = bench.watch.mark()
        change(bench.apps, NS_REACTION, image, BAD)
        release = bench.watch.final_release(NS_REACTION, "shop", image)
        status = release["status"]
        verdicts = "/".join(a["verdict"] for a in status.get("analyses") or [])
        moments = None
        if status["phase"] == "RolledBack":
            moments = rollback_moments(bench.watch, mark, NS_REACTION, "shop", release["metadata"]["name"])
        rows.append((release["metadata"]["name"], f"{status['phase']}/{status.get('reason', '')}", verdicts,
                     moments))
    after = scrape(bench.operator.metrics_url)

    print("\nReaction: failing verdict (Release phase RollingBack) -> canary deleted AND stable template "
          "restored, seen by watches\n")
    print(f"{'run':<4}{'release':<26}{'outcome':<26}{'analyses':<28}{'canary gone':>12}{'restored':>10}"
          f"{'reaction':>10}  (ms)")
    reactions = []
    for i, (name, outcome, verdicts, moments) in enumerate(rows, 1):
        if moments is None:
            print(f"{i:<4}{name:<26}{outcome:<26}{verdicts:<28}{'-':>12}{'-':>10}{'-':>10}")
            continue
        reaction = moments.done - moments.failed
        reactions.append(reaction)
        print(f"{i:<4}{name:<26}{outcome:<26}{verdicts:<28}{(moments.canary_gone - moments.failed) * 1000:>12.1f}"
              f"{(moments.restored - moments.failed) * 1000:>10.1f}{reaction * 1000:>10.1f}")
    if reactions:
        worst = max(reactions)
        print(f"\nreaction over {len(reactions)} rollbacks: p50 {percentile(reactions, 50) * 1000:.1f} ms, "
              f"max {worst * 1000:.1f} ms")
        print(f"  target < {TARGET_REACTION_S * 1000:g} ms (every rollback, judged on the max): "
              f"{worst * 1000:.1f} ms  {verdict_mark(worst < TARGET_REACTION_S)}")
    missing = len(rows) - len(reactions)
    if missing:
        print(f"  WARNING: {missing} of {len(rows)} bad releases did not end RolledBack")
    print(actuation_histogram(before, after))
    return not missing


# -- blast radius --------------------------------------------------------------------------------------


def new_template_hash(apps: kubernetes.client.AppsV1Api, namespace: str, image: str) -> str | None:
    """pod-template-hash of the ReplicaSet of ``shop`` that runs ``image`` (the plain rollout's new one)."""
    for rs in apps.list_namespaced_replica_set(namespace, label_selector="app=shop").items:
        if rs.spec.template.spec.containers[0].image == image:
            return rs.metadata.labels["pod-template-hash"]
    return None


def served(prom: PrometheusConnect, namespace: str, pods: str, window: int, at: float, code: str = "") -> float:
    selector = f'namespace="{namespace}",pod=~"{pods}"' + (f',code="{code}"' if code else "")
    result = prom.custom_query(f"sum(increase(http_requests_total{{{selector}}}[{window}s]))",
                               params={"time": f"{at:.3f}"})
    return float(result[0]["value"][1]) if result else 0.0


def run_blast(bench: Bench) -> bool:
    # Users hit the Service, which spreads them over every ready pod: a canary takes a share of them.
    traffic = {"sim.ballast.dev/service": "shop", "sim.ballast.dev/service-rps": str(BLAST_REPLICAS * DEFAULT_RPS)}
    create_service(bench, NS_BLAST, ["shop"], BLAST_REPLICAS, "shop", traffic)
    create_service(bench, NS_PLAIN, ["shop"], BLAST_REPLICAS, "shop", traffic)
    apps, prom = bench.apps, PrometheusConnect(url=bench.info.prometheus_url)
    image = f"app:bad-blast-{bench.run_id}"
    print(f"blast: {BLAST_REPLICAS}-replica shop in {NS_BLAST} (Ballast, first step {STEPS[0]}%) and in "
          f"{NS_PLAIN} (plain rolling update), both changed to {image} with 20% errors", flush=True)
    mark = bench.watch.mark()
    changed = time.time()
    change(apps, NS_BLAST, image, BAD)
    change(apps, NS_PLAIN, image, BAD)
    plain_hash = wait_for(lambda: new_template_hash(apps, NS_PLAIN, image), 30, "the plain rollout made no ReplicaSet")
    release = bench.watch.final_release(NS_BLAST, "shop", image)
    status = release["status"]
    if status["phase"] != "RolledBack":
        print(f"  WARNING: Ballast's release ended {status['phase']}/{status.get('reason')}, not RolledBack: "
              f"no interval to compare")
        return False
    moments = rollback_moments(bench.watch, mark, NS_BLAST, "shop", release["metadata"]["name"])
    end = moments.done
    weight = (status.get("analyses") or [{}])[-1].get("weight", STEPS[0])
    rolled = plain_rolled_out(bench.watch, mark, image)
    # Prometheus scrapes every second: wait until it holds samples from after the end of the interval (and
    # AFTERMATH s more, to see what the canary pods served between the rollback and their deletion).
    latest = f'max(timestamp(http_requests_total{{namespace="{NS_PLAIN}"}}))'
    wait_for(lambda: float((prom.custom_query(latest) or [{"value": [0, "0"]}])[0]["value"][1]) > end + AFTERMATH + 1,
             30, "Prometheus never scraped past the end of the interval")
    window = math.ceil(end - changed)
    new_pods = {BALLAST: (NS_BLAST, "shop-canary-.*"), PLAIN: (NS_PLAIN, f"shop-{plain_hash}-.*")}
    errors = {label: served(prom, ns, regex, window, end, "500") for label, (ns, regex) in new_pods.items()}
    requests = {label: served(prom, ns, regex, window, end) for label, (ns, regex) in new_pods.items()}
    service = {label: served(prom, ns, "shop-.*", window, end) for label, (ns, _) in new_pods.items()}
    aftermath = served(prom, NS_BLAST, "shop-canary-.*", math.ceil(end + AFTERMATH - changed), end + AFTERMATH, "500")

    verdicts = "/".join(a["verdict"] for a in status.get("analyses") or [])
    print(f"\nBlast radius: 5xx served by pods of the new template, from the change until Ballast's rollback was "
          f"actuated ({end - changed:.1f} s; RollingBack after {moments.failed - changed:.1f} s, analyses {verdicts} "
          f"at {weight}%; the plain rollout had all {BLAST_REPLICAS} new pods available after "
          f"{'-' if rolled is None else f'{rolled - changed:.1f} s'})\n")
    print(f"{'deployment':<34}{'new-template pods':<38}{'5xx':>7}{'requests':>10}{'service requests':>18}")
    for label, (ns, regex) in new_pods.items():
        print(f"{label:<34}{ns + '/' + regex:<38}{errors[label]:>7.0f}{requests[label]:>10.0f}{service[label]:>18.0f}")
    print(f'(PromQL: sum(increase(http_requests_total{{namespace=NS,code="500",pod=~REGEX}}[{window}s])) at the end; '
          'service requests: pod=~"shop-.*", every code)')
    if errors[PLAIN] <= 0 or errors[BALLAST] < 0:
        print("  WARNING: the plain rolling update served no errors; the ratio is undefined")
        return False
    ratio = errors[BALLAST] / errors[PLAIN]
    print(f"\nratio Ballast / plain (5xx counts): {ratio * 100:.2f}%")
    print(f"  target < {TARGET_BLAST_RATIO * 100:g}%: {ratio * 100:.2f}%  {verdict_mark(ratio < TARGET_BLAST_RATIO)}")
    if service[BALLAST] > 0 and service[PLAIN] > 0:
        normalised = (errors[BALLAST] / service[BALLAST]) / (errors[PLAIN] / service[PLAIN])
        print(f"for reference, the same ratio per request the whole service served: {normalised * 100:.2f}%")
    print(f"canary pods' 5xx including the {AFTERMATH:g} s after the interval (until garbage collection stopped "
          f"them): {aftermath:.0f}")
    return True


def plain_rolled_out(watch: ClusterWatch, mark: int, image: str) -> float | None:
    """When the plain Deployment first showed every replica on ``image`` and available (None if not yet)."""
    for seen in watch.since(mark):
        if (seen.kind, seen.namespace, seen.name) != ("Deployment", NS_PLAIN, "shop") or \
                image_and_paused(seen.body)[0] != image:
            continue
        status = seen.body.get("status") or {}
        if status.get("observedGeneration", 0) >= seen.body["metadata"].get("generation", 0) and \
                status.get("updatedReplicas") == status.get("availableReplicas") == status.get("replicas") == \
                BLAST_REPLICAS:
            return seen.at
    return None


# -- false rollbacks -----------------------------------------------------------------------------------


def release_sequentially(bench: Bench, name: str, count: int, traffic: dict[str, str]) -> list[dict[str, Any]]:
    api = kubernetes.config.new_client_from_config(config_file=bench.info.kubeconfig)  # one client per thread
    apps = kubernetes.client.AppsV1Api(api)
    done = []
    for i in range(count):
        image = f"app:good-{bench.run_id}-{name}-{i}"
        change(apps, NS_FALSE, image, traffic, name=name)
        done.append(bench.watch.final_release(NS_FALSE, name, image))
    return done


def run_false(bench: Bench, releases: int, deployments: int, step_duration: str, latency: bool) -> bool:
    names = [f"svc-{d}" for d in range(deployments)]
    traffic = {**GOOD, **(JITTERY if latency else {})}
    create_service(bench, NS_FALSE, names, FALSE_REPLICAS, "svc", traffic=traffic)
    shares = [releases // deployments + (1 if d < releases % deployments else 0) for d in range(deployments)]
    jitter = (f"; p99 latency judged, every version {JITTERY['sim.ballast.dev/latency-ms']} ms "
              f"+-{float(JITTERY['sim.ballast.dev/latency-jitter']):.0%}" if latency else "")
    print(f"false: {releases} good releases (0.5% errors on baseline and canary{jitter}) over {deployments} "
          f"{FALSE_REPLICAS}-replica Deployments in {NS_FALSE}, in parallel, each sequentially", flush=True)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=deployments, thread_name_prefix="release") as pool:
        futures = {name: pool.submit(release_sequentially, bench, name, share, traffic)
                   for name, share in zip(names, shares, strict=True)}
        results = {name: future.result() for name, future in futures.items()}
    wall = time.monotonic() - started

    print(f"\nFalse rollbacks: {releases} good releases, steps {STEPS} at {step_duration} each\n")
    print(f"{'deployment':<12}{'releases':>9}{'Promoted':>10}{'RolledBack':>12}{'other':>7}  verdicts")
    outcomes: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    rolled_back = []
    for name, items in results.items():
        mine = Counter(r["status"]["phase"] for r in items)
        theirs = Counter(a["verdict"] for r in items for a in r["status"].get("analyses") or [])
        outcomes += mine
        verdicts += theirs
        rolled_back += [r for r in items if r["status"]["phase"] == "RolledBack"]
        other = sum(mine.values()) - mine["Promoted"] - mine["RolledBack"]
        print(f"{name:<12}{len(items):>9}{mine['Promoted']:>10}{mine['RolledBack']:>12}{other:>7}  {dict(theirs)}")
    print(f"{'total':<12}{sum(outcomes.values()):>9}{outcomes['Promoted']:>10}{outcomes['RolledBack']:>12}"
          f"{sum(outcomes.values()) - outcomes['Promoted'] - outcomes['RolledBack']:>7}  {dict(verdicts)}")
    print(f"\noutcomes {dict(outcomes)}; wall time {wall:.0f} s ({wall / max(1, releases) * deployments:.1f} s "
          "per release per Deployment)")
    print(f"  target 0 rolled back: {len(rolled_back)}  {verdict_mark(not rolled_back)}")
    if latency:
        checks = Counter(c["verdict"] for items in results.values() for r in items
                         for a in r["status"].get("analyses") or [] for c in a.get("checks") or []
                         if c["name"] == "latency")
        print(f"  latency verdicts: {dict(checks)}")
    for release in rolled_back:
        status = release["status"]
        print(f"  {release['metadata']['name']} ({release['spec']['deployment']}): {status.get('reason')}: "
              f"{status.get('message')}")
        for a in status.get("analyses") or []:
            print(f"    step {a['step']} ({a['weight']}%) {a['verdict']}: {a.get('message')} "
                  f"canary {a.get('canary')} baseline {a.get('baseline')}")
    unexpected = sum(outcomes.values()) - outcomes["Promoted"] - outcomes["RolledBack"]
    if unexpected:
        print(f"  WARNING: {unexpected} release(s) ended neither Promoted nor RolledBack")
    return True


# -- a +200 ms latency regression ---------------------------------------------------------------------------


def run_slow(bench: Bench, runs: int, latency: bool) -> bool:
    if not latency:
        print("slow: skipped, it needs --latency (the tier judges latency only then)")
        return True
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
    parser.add_argument("--runs", type=int, default=5, help="reaction: bad releases, one after another")
    parser.add_argument("--releases", type=int, default=50, help="false: good releases in total")
    parser.add_argument("--deployments", type=int, default=5, help="false: Deployments releasing in parallel")
    parser.add_argument("--step-duration", default=FAST_TIER["stepDuration"],
                        help="canary step duration of the policy, every part (default %(default)s)")
    parser.add_argument("--latency", action="store_true",
                        help="the tier also judges p99 latency, and the false part's versions jitter (30 ms +-90%%)")
    parser.add_argument("--state-dir", help="cluster state dir (default: a fresh temp dir, removed on success); "
                        "a healthy cluster already running there is reused and left running")
    args = parser.parse_args(argv)
    parts = [p for p in PARTS if p in (args.only or PARTS)]

    with environment(args.state_dir, [POLICY, HUNG_POLICY], [*GOVERNED_NAMESPACES, NS_PLAIN, NS_HUNG]) as env:
        prepare_cluster(env.api, max_concurrent=max(5, args.deployments), step_duration=args.step_duration,
                        latency=args.latency)
        watch = ClusterWatch(env.info.kubeconfig)
        watch.start()
        try:
            bench = Bench(env.info, env.api, env.operator, watch, uuid.uuid4().hex[:6])
            ok = True
            for part in parts:
                print(f"\n=== {part} ===", flush=True)
                started = time.monotonic()
                if part == "reaction":
                    ok &= run_reaction(bench, args.runs)
                elif part == "hung":
                    ok &= run_hung(bench, args.runs)
                elif part == "blast":
                    ok &= run_blast(bench)
                elif part == "false":
                    ok &= run_false(bench, args.releases, args.deployments, args.step_duration, args.latency)
                else:
                    ok &= run_slow(bench, args.runs, args.latency)
                print(f"({part} took {time.monotonic() - started:.0f} s)", flush=True)
            if watch.relists:
                print(f"note: the watches had to list again {watch.relists} time(s); events in those gaps were lost")
        finally:
            watch.stop()
        env.ok = ok
        return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
