"""Traffic simulator: stands in for the users of the simulated workloads.

Ballast's canary analysis reads request and error rates per pod from Prometheus.
There are no real containers here, so this process pretends every Ready pod
serves a steady stream of requests and exports the counters Prometheus would
scrape from a real service: `http_requests_total{namespace,pod,code}` and the latency histogram
`http_request_duration_seconds{namespace,pod}` (the demo app's name and buckets, deploy/kind/demo-app).

Per pod template (the pod's annotations):
  sim.ballast.dev/rps          requests per second per pod (default --rps)
  sim.ballast.dev/error-ratio  share of requests answered 500, 0..1 (default 0)
  sim.ballast.dev/latency-ms   mean time to answer a request in ms (default 0), so a version can be slow
  sim.ballast.dev/latency-jitter  each request takes latency-ms times uniform(1-j, 1+j), 0..1 (default 0.5,
                               the demo app's +-50 %)
  sim.ballast.dev/service      name of the service the pod serves; with
  sim.ballast.dev/service-rps  the service's total requests per second, shared evenly by its ready pods
                               in the namespace, the way a Service spreads user traffic: a canary pod
                               then takes a share of the users instead of adding users of its own.

Request and error counts are drawn per tick from a seedable RNG, so a test can
make a "bad release" (error-ratio 0.2) or a noisy baseline (0.005).

    python -m tests.harness.trafficsim --kubeconfig K --port P [--rps 20] [--seed N]
"""

from __future__ import annotations

import argparse
import logging
import random
import threading
import time
from collections import Counter as Tally
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tests.harness.podwatch import (
    NamespaceFilter,
    Pod,
    add_common_args,
    annotation,
    configure_logging,
    core_api,
    is_ready,
    pod_key,
    watch_pods,
)

RPS = "sim.ballast.dev/rps"
ERROR_RATIO = "sim.ballast.dev/error-ratio"
SERVICE = "sim.ballast.dev/service"
SERVICE_RPS = "sim.ballast.dev/service-rps"
LATENCY_MS = "sim.ballast.dev/latency-ms"
LATENCY_JITTER = "sim.ballast.dev/latency-jitter"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""The demo app's buckets (deploy/kind/demo-app/app.py), so the same policy judges both."""
TICK_SECONDS = 0.25
# Series of a deleted pod stay this long so Prometheus scrapes its last increments.
GONE_GRACE_SECONDS = 30.0

log = logging.getLogger("trafficsim")


@dataclass
class SimPod:
    rps: float
    error_ratio: float
    serving: bool
    annotations: tuple[str | None, ...]
    service: str | None = None
    service_rps: float | None = None
    latency: float = 0.0  # mean seconds per request
    jitter: float = 0.5
    carry: float = 0.0  # fractional requests not yet emitted, so low rates stay exact
    gone_at: float | None = None


def parse_number(pod: Pod, key: str, default: float, upper: float | None) -> float:
    raw = annotation(pod, key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0 or (upper is not None and value > upper):
        log.warning("%s/%s: ignoring invalid %s=%r", *pod_key(pod), key, raw)
        return default
    return value


class TrafficSimulator:
    def __init__(self, default_rps: float, seed: int | None) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "http_requests",
            "Simulated HTTP requests served by a pod.",
            ["namespace", "pod", "code"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "Simulated time to answer a request.",
            ["namespace", "pod"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._pods_gauge = Gauge(
            "trafficsim_pods",
            "Pods currently receiving simulated traffic.",
            registry=self.registry,
        )
        self._default_rps = default_rps
        self._rng = random.Random(seed)
        self._pods: dict[tuple[str, str], SimPod] = {}
        self._lock = threading.Lock()  # the watch thread writes, the tick loop reads

    def handle(self, kind: str, pod: Pod) -> None:
        key = pod_key(pod)
        with self._lock:
            if kind == "DELETED":
                if key in self._pods:
                    self._pods[key].serving = False
                    self._pods[key].gone_at = time.monotonic()
                return
            current = self._pods.get(key)
            annotations = tuple(annotation(pod, k) for k in (RPS, ERROR_RATIO, SERVICE, SERVICE_RPS, LATENCY_MS,
                                                             LATENCY_JITTER))
            if current is None or current.annotations != annotations:
                service = annotation(pod, SERVICE)
                service_rps = parse_number(pod, SERVICE_RPS, 0.0, None) if service else 0.0
                fresh = SimPod(
                    rps=parse_number(pod, RPS, self._default_rps, None),
                    error_ratio=parse_number(pod, ERROR_RATIO, 0.0, 1.0),
                    serving=False,
                    annotations=annotations,
                    service=service,
                    service_rps=service_rps or None,
                    latency=parse_number(pod, LATENCY_MS, 0.0, None) / 1000,
                    jitter=parse_number(pod, LATENCY_JITTER, 0.5, 1.0),
                )
                if current is not None:
                    fresh.carry = current.carry
                current = self._pods[key] = fresh
                for code in ("200", "500"):  # both series exist from the start so rate() works
                    self._requests.labels(*key, code).inc(0)
                self._latency.labels(*key)
            current.serving = is_ready(pod)
            current.gone_at = None

    def tick(self, dt: float) -> None:
        now = time.monotonic()
        with self._lock:
            sharing = Tally(
                (key[0], pod.service) for key, pod in self._pods.items() if pod.serving and pod.service_rps
            )
            for key, pod in list(self._pods.items()):
                if pod.gone_at is not None and now - pod.gone_at > GONE_GRACE_SECONDS:
                    del self._pods[key]
                    for code in ("200", "500"):
                        self._requests.remove(*key, code)
                    self._latency.remove(*key)
                    continue
                if not pod.serving:
                    continue
                rps = pod.service_rps / sharing[(key[0], pod.service)] if pod.service_rps else pod.rps
                pod.carry += rps * dt
                count = int(pod.carry)
                pod.carry -= count
                errors = sum(self._rng.random() < pod.error_ratio for _ in range(count))
                self._requests.labels(*key, "200").inc(count - errors)
                self._requests.labels(*key, "500").inc(errors)
                latency = self._latency.labels(*key)
                for _ in range(count):
                    latency.observe(pod.latency * self._rng.uniform(1 - pod.jitter, 1 + pod.jitter))
            self._pods_gauge.set(sum(p.serving for p in self._pods.values()))

    def run_ticks(self) -> None:
        last = time.monotonic()
        while True:
            time.sleep(TICK_SECONDS)
            now = time.monotonic()
            # Use the real elapsed time so a slow tick does not lower the rate.
            self.tick(now - last)
            last = now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rps", type=float, default=20.0, help="default requests/s per pod")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    configure_logging("trafficsim")
    sim = TrafficSimulator(args.rps, args.seed)
    start_http_server(args.port, addr="127.0.0.1", registry=sim.registry)
    core = core_api(args.kubeconfig)
    watcher = threading.Thread(
        target=watch_pods,
        args=(core, NamespaceFilter(core, args.namespace_selector), sim.handle),
        daemon=True,
    )
    watcher.start()
    log.info("serving metrics on 127.0.0.1:%d", args.port)
    sim.run_ticks()


if __name__ == "__main__":
    main()
