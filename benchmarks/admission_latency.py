"""Added latency of Ballast's validating webhook on Deployment creates, with and without it, in one run.

    python -m benchmarks.admission_latency [--rate 50] [--duration 30] [--state-dir DIR] [--persist]

Measures what a user of the API server pays for Ballast (spec, "Numbers it is held to"): the p50/p99
latency of a Deployment create through kube-apiserver in a namespace a ReleasePolicy governs (the API
server calls Ballast's webhook over TLS) against the same create in a namespace nothing governs (no
webhook call), interleaved request by request in the same run against the same API server, so that
machine noise lands on both classes alike. Requests are paced open-loop at ``--rate`` per second in
total (scheduled by start time, sent from a small thread pool, so a slow request does not delay the
next), each Deployment has a fresh name and the annotations that pass admission; latency is taken with
``time.perf_counter()`` around the client call. A 3 s warm-up is discarded.

Why server-side dry-run by default: with ``dryRun=All`` the API server runs the whole admission chain,
including validating webhooks (Ballast's webhook declares itself side-effect free on dry-run), but
persists nothing, so kube-controller-manager, the pod simulator and a growing etcd add no noise that
would depend on how long the benchmark ran. ``--persist`` really creates the Deployments instead.

Starts its own local control plane (tests/harness/cluster.py) and a real ``ballast operator run``,
and stops both at the end. The operator's own view (its ``ballast_admission_duration_seconds``
histogram, and its ``ballast_admission_requests_total`` counter, which proves the webhook was called
once per governed request) is printed too. Not a test: it prints figures and PASS/MISS per target.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import kubernetes
import requests
from prometheus_client.parser import text_string_to_metric_families

from ballast.api.common import GROUP, VERSION
from benchmarks.environment import environment
from tests.harness import wait_for
from tests.harness.cluster import ClusterInfo
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy

GOVERNED, PLAIN = "bench-governed", "bench-plain"
POLICY = "bench-admission-latency"
SELECTOR = {"ballast.dev/bench": "governed"}
CLASSES = {GOVERNED: "governed (Ballast webhook)", PLAIN: "plain (no webhook)"}
TARGET_P99_ADDED_MS = 10.0
WARMUP_SECONDS = 3.0
WORKERS = 8
LATE_MS = 5.0  # a request that starts this much behind its schedule means the load generator lagged


@dataclass(frozen=True)
class Sample:
    namespace: str
    latency_ms: float
    lag_ms: float  # start - scheduled start
    error: str | None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


class LoadGenerator:
    """Open-loop creates, alternating governed/plain, one ApiClient per worker thread."""

    def __init__(self, kubeconfig: str, persist: bool) -> None:
        self.kubeconfig = kubeconfig
        self.dry_run = None if persist else "All"
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="bench")

    def _apps(self) -> kubernetes.client.AppsV1Api:
        if not hasattr(self._local, "apps"):
            api = kubernetes.config.new_client_from_config(config_file=self.kubeconfig)
            self._local.apps = kubernetes.client.AppsV1Api(api)
        return self._local.apps

    def _create(self, namespace: str, name: str, scheduled: float) -> Sample:
        apps = self._apps()
        body = deployment(name, {"app": "bench"}, annotations=OWNERSHIP_ANNOTATIONS)
        error = None
        started = time.perf_counter()
        try:
            apps.create_namespaced_deployment(namespace, body, dry_run=self.dry_run)
        except kubernetes.client.ApiException as exc:
            error = f"{exc.status} {exc.reason}"
        except Exception as exc:  # connection errors and the like: count them, keep the schedule
            error = type(exc).__name__
        finished = time.perf_counter()
        return Sample(namespace, (finished - started) * 1000, (started - scheduled) * 1000, error)

    def run(self, rate: float, seconds: float, prefix: str) -> tuple[list[Sample], float]:
        """Send `rate * seconds` creates on schedule; the samples and the wall time until the last answer."""
        count = round(rate * seconds)
        t0 = time.perf_counter()
        futures = []
        for i in range(count):
            scheduled = t0 + i / rate
            if (delay := scheduled - time.perf_counter()) > 0:
                time.sleep(delay)  # pacing only
            namespace = GOVERNED if i % 2 == 0 else PLAIN
            futures.append(self._pool.submit(self._create, namespace, f"{prefix}-{i}", scheduled))
        samples = [future.result() for future in futures]
        return samples, time.perf_counter() - t0

    def close(self) -> None:
        self._pool.shutdown()


# -- the operator's /metrics --------------------------------------------------------------------------


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = requests.get(url, timeout=5).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels: str) -> dict[frozenset, float]:
    """Per label set: after - before, for samples named `name` that carry `labels`."""
    wanted = set(labels.items())
    return {
        key[1]: value - before.get(key, 0.0)
        for key, value in after.items()
        if key[0] == name and wanted <= key[1]
    }


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float:
    """Like PromQL's histogram_quantile over cumulative (le, count) pairs; linear inside a bucket."""
    ordered = sorted(buckets)
    total = ordered[-1][1]
    if total <= 0:
        return math.nan
    rank, lower_le, lower_count = q * total, 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if math.isinf(le):
                return lower_le  # past the last finite bucket: its bound is all we know
            return lower_le + (le - lower_le) * (rank - lower_count) / max(count - lower_count, 1e-9)
        lower_le, lower_count = le, count
    return lower_le


# -- setup ---------------------------------------------------------------------------------------------


def refusal_status(apps: kubernetes.client.AppsV1Api, namespace: str) -> int | None:
    """HTTP status refusing a dry-run create of a Deployment without annotations, None if admitted."""
    try:
        apps.create_namespaced_deployment(namespace, deployment("probe", {"app": "probe"}), dry_run="All")
    except kubernetes.client.ApiException as error:
        return error.status
    return None


def prepare(info: ClusterInfo, api: kubernetes.client.ApiClient) -> None:
    """Namespaces and policy, then wait until the webhook refuses in the governed namespace only."""
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    for name, labels in ((GOVERNED, SELECTOR), (PLAIN, {})):
        try:
            core.create_namespace({"metadata": {"name": name, "labels": labels}})
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
    try:
        custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(POLICY, SELECTOR))
    except kubernetes.client.ApiException as error:
        if error.status != 409:  # 409: left by an interrupted run on a reused cluster
            raise
    wait_for(lambda: refusal_status(apps, GOVERNED) == 403, 60, f"the webhook never refused in {GOVERNED}")
    if (status := refusal_status(apps, PLAIN)) is not None:
        raise RuntimeError(f"{PLAIN} is not ungoverned: a create without annotations was refused ({status})")


# -- report --------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, samples: list[Sample], wall: float, before: dict, after: dict) -> bool:
    """Print the figures; False when the run is not trustworthy (errors, webhook not called)."""
    mode = "real creates (--persist)" if args.persist else "server-side dry-run (dryRun=All)"
    errors = Counter(s.error for s in samples if s.error)
    late = sum(1 for s in samples if s.lag_ms > LATE_MS)
    print(f"\nBallast admission latency: Deployment create through kube-apiserver, {mode}")
    print(f"target rate {args.rate:g} req/s for {args.duration:g} s (after {WARMUP_SECONDS:g} s warm-up, "
          f"discarded), governed and plain alternating; achieved {len(samples) / wall:.1f} req/s; "
          f"errors {sum(errors.values())}{' ' + str(dict(errors)) if errors else ''}; "
          f"starts >{LATE_MS:g} ms behind schedule {late} (max {max(s.lag_ms for s in samples):.1f} ms)\n")
    print(f"{'class':<28}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}  (ms)")
    stats: dict[str, dict[int, float]] = {}
    for namespace, label in CLASSES.items():
        values = [s.latency_ms for s in samples if s.namespace == namespace and not s.error]
        if not values:
            print(f"{label:<28}{0:>6}  (no successful requests)")
            continue
        stats[namespace] = {q: percentile(values, q) for q in (50, 90, 99, 100)}
        print(f"{label:<28}{len(values):>6}" + "".join(f"{stats[namespace][q]:>9.2f}" for q in (50, 90, 99, 100)))
    if len(stats) == 2:
        added = {q: stats[GOVERNED][q] - stats[PLAIN][q] for q in (50, 99)}
        verdict = "PASS" if added[99] < TARGET_P99_ADDED_MS else "MISS"
        print(f"\nadded latency (governed - plain): p50 {added[50]:.2f} ms, p99 {added[99]:.2f} ms")
        print(f"  target p99 added < {TARGET_P99_ADDED_MS:g} ms: {added[99]:.2f} ms  {verdict}")
        tail = math.ceil(len([s for s in samples if s.namespace == GOVERNED]) / 100)
        print(f"  (each p99 rests on the slowest ~{tail} requests of its class: expect run-to-run spread of "
              "several ms; a longer --duration steadies it)")
    print("  target p50 added within 1 ms of a trivial kopf validating handler: NOT MEASURED (this benchmark "
          "runs no trivial-webhook comparison; the spec's reference figure for such a handler is ~2.3 ms at p50)")

    buckets = delta(before, after, "ballast_admission_duration_seconds_bucket", kind="Deployment")
    pairs = [(float(dict(labels)["le"]), count) for labels, count in buckets.items()]
    observed = max((count for _, count in pairs), default=0.0)
    if observed:
        p50, p99 = (histogram_quantile(q, pairs) * 1000 for q in (0.5, 0.99))
        print(f"\noperator-side decision time (ballast_admission_duration_seconds, bucket estimate): "
              f"p50 {p50:.2f} ms, p99 {p99:.2f} ms over {observed:.0f} observations")
    calls = delta(before, after, "ballast_admission_requests_total", kind="Deployment")
    decisions = Counter({dict(labels)["decision"]: int(n) for labels, n in calls.items() if n})
    total_calls = sum(decisions.values())
    governed_sent = sum(1 for s in samples if s.namespace == GOVERNED)
    print(f"webhook calls counted by the operator (ballast_admission_requests_total): {total_calls} for "
          f"{governed_sent} governed requests {dict(decisions)}")
    called = abs(total_calls - governed_sent) <= max(2, governed_sent // 100)
    if not called:
        print("  WARNING: the webhook was not called once per governed request; the comparison is not valid")
    return called and not errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.admission_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second, both classes together")
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds (after the warm-up)")
    parser.add_argument("--state-dir", help="cluster state dir (default: a fresh temp dir, removed on success); "
                        "a healthy cluster already running there is reused and left running")
    parser.add_argument("--persist", action="store_true", help="really create the Deployments (no dry-run)")
    args = parser.parse_args(argv)

    with environment(args.state_dir, [POLICY], [GOVERNED, PLAIN]) as env:
        prepare(env.info, env.api)
        print("webhook enforced in bench-governed, bench-plain ungoverned; warming up ...", flush=True)
        load = LoadGenerator(env.info.kubeconfig, args.persist)
        try:
            run_id = uuid.uuid4().hex[:6]
            load.run(args.rate, WARMUP_SECONDS, f"warm-{run_id}")
            before = scrape(env.operator.metrics_url)
            samples, wall = load.run(args.rate, args.duration, f"bench-{run_id}")
            after = scrape(env.operator.metrics_url)
        finally:
            load.close()
        env.ok = report(args, samples, wall, before, after)
        return 0 if env.ok else 1

if __name__ == "__main__":
    sys.exit(main())
