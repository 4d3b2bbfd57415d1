"""A small HTTP proxy in front of the real Prometheus that misbehaves on request, for fault tests.

Ballast must survive a Prometheus that is slow, answers 500s, answers garbage or answers the wrong
shape. A real Prometheus cannot be asked to do most of that, so tests point a ReleasePolicy's
``prometheus.url`` at this proxy and pick a fault; in ``pass`` mode it forwards every request to the
real server unchanged. A Prometheus that hangs outright is tested on the real process (SIGSTOP).

    with FaultProxy(cluster.prometheus_url) as proxy:
        proxy.fault = "matrix"          # pass | slow | error | garbage | matrix | nan | negative
        proxy.url                       # what the policy points at
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

FAULTS = ("pass", "slow", "error", "garbage", "matrix", "nan", "negative")


class FaultProxy:
    def __init__(self, upstream: str, slow_seconds: float = 10.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.slow_seconds = slow_seconds
        self.fault = "pass"
        self.requests = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.requests += 1
                proxy.answer(self)

            def do_POST(self) -> None:
                proxy.requests += 1
                proxy.answer(self)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        fault = self.fault
        if fault == "slow":
            time.sleep(self.slow_seconds)
        if fault == "error":
            self._send(handler, 500, b"internal error")
            return
        if fault == "garbage":
            self._send(handler, 200, b"<html>this is not JSON")
            return
        upstream = requests.get(self.upstream + handler.path, timeout=30)
        body = upstream.content
        if fault in ("matrix", "nan", "negative") and "/api/v1/query" in handler.path:
            body = json.dumps(self._distorted(upstream.json(), fault)).encode()
        self._send(handler, upstream.status_code, body)

    @staticmethod
    def _distorted(answer: dict[str, Any], fault: str) -> dict[str, Any]:
        data = answer.get("data") or {}
        series = data.get("result") or [{"metric": {}, "value": [time.time(), "1"]}]
        if fault == "matrix":
            data["resultType"] = "matrix"
            data["result"] = [{"metric": s.get("metric", {}), "values": [s["value"], s["value"]]} for s in series]
        else:
            text = "NaN" if fault == "nan" else "-42"
            data["result"] = [{"metric": s.get("metric", {}), "value": [s["value"][0], text]} for s in series]
        answer["data"] = data
        return answer

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
        try:
            handler.send_response(code)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting, which is what a deadline is for
