"""POSTs to receivers (delivery.py) against a real local HTTP server: success, retries on 5xx, no URL in errors."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ballast.delivery import ATTEMPTS, DeliveryError, post_json


@pytest.fixture
def server():
    hits: list[tuple[str, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(int(self.path.split("/")[1]))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def test_a_2xx_is_delivered_once(server):
    url, hits = server
    post_json(f"{url}/204/token", {"text": "hello"})
    assert hits == [("/204/token", {"text": "hello"})]


def test_a_5xx_is_retried_then_fails_without_the_url(server):
    url, hits = server
    with pytest.raises(DeliveryError) as failed:
        post_json(f"{url}/503/s3cr3t", {"text": "hello"})
    assert len(hits) == ATTEMPTS
    assert str(failed.value) == f"{ATTEMPTS} attempts failed, the last with too many 503 error responses"
    assert "s3cr3t" not in str(failed.value)


def test_a_4xx_is_not_retried(server):
    url, hits = server
    with pytest.raises(DeliveryError, match="the receiver answered HTTP 404"):
        post_json(f"{url}/404/x", {})
    assert len(hits) == 1


@pytest.mark.parametrize("url", ["ftp://example.com/x", "hooks.slack.com/services/x", ""])
def test_only_http_urls(url):
    with pytest.raises(DeliveryError, match="not an http"):
        post_json(url, {})
