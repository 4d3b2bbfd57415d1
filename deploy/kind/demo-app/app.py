"""The kind demo's service: answers 500 to a share of requests and counts what it answered.

Standard library only, so it runs from a ConfigMap in the stock python image without building one.
ERROR_RATIO (0..1) is set per pod template, which is how the demo ships a good or a bad "version".
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CODES = ("200", "500")


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Both series exist from the first scrape: a series that appears at 1 hides that first increment
        # from increase(), which is exactly the error the canary analysis must not miss.
        self.by_code = dict.fromkeys(CODES, 0)

    def add(self, code: str) -> None:
        with self._lock:
            self.by_code[code] += 1

    def exposition(self) -> str:
        with self._lock:
            counts = dict(self.by_code)
        lines = ["# HELP http_requests_total Requests answered, by status code.",
                 "# TYPE http_requests_total counter"]
        lines += [f'http_requests_total{{code="{code}"}} {count}' for code, count in sorted(counts.items())]
        return "\n".join(lines) + "\n"


class Handler(BaseHTTPRequestHandler):
    server: DemoServer

    def do_GET(self) -> None:
        if self.path == "/metrics":
            self._reply(200, self.server.counters.exposition(), "text/plain; version=0.0.4")
        elif self.path == "/healthz":
            self._reply(200, "ok\n")
        else:
            code = "500" if random.random() < self.server.error_ratio else "200"
            self.server.counters.add(code)
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

    def __init__(self, address: tuple[str, int], error_ratio: float, version: str = "dev") -> None:
        super().__init__(address, Handler)
        self.error_ratio = error_ratio
        self.version = version
        self.counters = Counters()


def main() -> None:
    # As PID 1 the process would ignore SIGTERM, and every pod the demo replaces would linger 30 s.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = DemoServer(("", int(os.environ.get("PORT", "8080"))), float(os.environ.get("ERROR_RATIO", "0")),
                        os.environ.get("VERSION", "dev"))
    print(f"recommendations {server.version} on :{server.server_port}, error ratio {server.error_ratio}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
