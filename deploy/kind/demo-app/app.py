"""The demo service: answers 500 to a share of requests, takes its time, and counts what it answered.

Standard library only, so it runs from a ConfigMap in the stock python image without building one (and
in the harness's Debian-based image, tests/harness/images.py). A "version" is its pod template's env:

  VERSION        shown in every answer                         (default "dev")
  ERROR_RATIO    share of requests answered 500, 0..1          (default 0)
  LATENCY_MS     mean time to answer a request, +-50 % jitter  (default 0)
  STARTUP_SECONDS  /readyz answers 503 this long after start,  (default 5)
                   as a real service warms caches and connects before it takes traffic
  DRAIN_SECONDS  after SIGTERM, keep answering this long with /readyz at 503, then exit  (default 3):
                 the kubelet signals the pod while kube-proxy still routes new connections to it
  PORT           (default 8080)

Endpoints: / (the traffic), /metrics (Prometheus text: http_requests_total by code and the
http_request_duration_seconds histogram, traffic only), /healthz (liveness: up), /readyz (readiness).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CODES = ("200", "500")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds in seconds (Prometheus' client default buckets)."""


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Both series exist from the first scrape: a series that appears at 1 hides that first increment
        # from increase(), which is exactly the error the canary analysis must not miss.
        self.by_code = dict.fromkeys(CODES, 0)
        self.bucket_counts = [0] * len(BUCKETS)
        self.duration_sum = 0.0

    def add(self, code: str, seconds: float = 0.0) -> None:
        with self._lock:
            self.by_code[code] += 1
            self.duration_sum += seconds
            for index, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.bucket_counts[index] += 1

    def exposition(self) -> str:
        with self._lock:
            counts, buckets, total_seconds = dict(self.by_code), list(self.bucket_counts), self.duration_sum
        lines = ["# HELP http_requests_total Requests answered, by status code.",
                 "# TYPE http_requests_total counter"]
        lines += [f'http_requests_total{{code="{code}"}} {count}' for code, count in sorted(counts.items())]
        lines += ["# HELP http_request_duration_seconds Time to answer a request.",
                  "# TYPE http_request_duration_seconds histogram"]
        lines += [f'http_request_duration_seconds_bucket{{le="{bound}"}} {count}'
                  for bound, count in zip(BUCKETS, buckets, strict=True)]
        observed = sum(counts.values())
        lines += [f'http_request_duration_seconds_bucket{{le="+Inf"}} {observed}',
                  f"http_request_duration_seconds_sum {total_seconds}",
                  f"http_request_duration_seconds_count {observed}"]
        return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    server: DemoServer

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._reply(200, self.server.counters.exposition(), "text/plain; version=0.0.4")
        elif self.path == "/healthz":
            self._reply(200, "ok\n")
        elif self.path == "/readyz":
            remaining = self.server.ready_at - time.monotonic()
            if self.server.draining.is_set():
                self._reply(503, "draining\n")
            elif remaining > 0:
                self._reply(503, f"starting: {remaining:.1f}s left\n")
            else:
                self._reply(200, "ready\n")
        else:
            started = time.monotonic()
            if self.server.latency > 0:
                time.sleep(self.server.latency * random.uniform(0.5, 1.5))
            code = "500" if random.random() < self.server.error_ratio else "200"
            # Counted before the answer leaves, so a scrape after the answer always includes it.
            self.server.counters.add(code, time.monotonic() - started)
            self._reply(int(code), f"recommendations {self.server.version}: {code}\n")

    def _reply(self, code: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # 20 requests a second would drown the pod log


class DemoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], error_ratio: float, version: str = "dev",
                 latency: float = 0.0, startup: float = 0.0) -> None:
        super().__init__(address, Handler)
        self.error_ratio = error_ratio
        self.version = version
        self.latency = latency
        """Mean seconds to answer a request."""
        self.ready_at = time.monotonic() + startup
        self.draining = threading.Event()
        self.counters = Counters()

    def drain(self, seconds: float) -> None:
        """Stop being ready, keep answering for `seconds`, then stop serve_forever()."""
        self.draining.set()
        timer = threading.Timer(seconds, self.shutdown)
        timer.daemon = True
        timer.start()


def main() -> None:
    env = os.environ.get
    server = DemoServer(("", int(env("PORT", "8080"))), float(env("ERROR_RATIO", "0")), env("VERSION", "dev"),
                        latency=float(env("LATENCY_MS", "0")) / 1000, startup=float(env("STARTUP_SECONDS", "5")))
    # As PID 1 the process would ignore SIGTERM, and every pod the demo replaces would linger 30 s; exiting
    # at once would refuse the connections kube-proxy still sends (seen as unanswered requests on real pods).
    signal.signal(signal.SIGTERM, lambda *_: server.drain(float(env("DRAIN_SECONDS", "3"))))
    print(f"recommendations {server.version} on :{server.server_port}, error ratio {server.error_ratio}, "
          f"latency {server.latency * 1000:g} ms, ready in {env('STARTUP_SECONDS', '5')} s", flush=True)
    server.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
