"""Notifications end to end: the real operator tells local HTTP receivers (a Slack-compatible one, a JSON webhook,
one that answers 500 and one that hangs) about a promotion, a rollback, a freeze refusal and break-glass, and the
releases finish on time whatever the receivers do."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import kubernetes
import pytest

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.integration.releasing import BAD, FAST_TIER, GOOD, change, final_release, govern

TOKEN = "T000-B000-s3cr3t"
"""In the receivers' URL paths, as in a Slack webhook URL: it must never show in an event."""


class Receivers:
    """One local HTTP server: /ok/... records what it is sent, /fail/... answers 500, /hang/... never answers."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict]] = []
        self.failed_attempts = 0
        self.released = threading.Event()
        receivers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.startswith("/hang/"):
                    receivers.released.wait(120)
                    return
                if self.path.startswith("/fail/"):
                    receivers.failed_attempts += 1
                    self.send_response(500)
                else:
                    receivers.received.append((self.path, body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def sent(self, path: str, event: str) -> list[dict]:
        return [body for p, body in self.received if p.startswith(path) and event in json.dumps(body)]


@pytest.fixture
def receivers():
    server = Receivers()
    yield server
    server.stop()


def receiver(name: str, type_: str, namespace: str, **extra) -> dict:
    return {"name": name, "type": type_, "urlSecretRef": {"namespace": namespace, "name": "hooks", "key": name},
            **extra}


def failures(core, namespace, name):
    return [e for e in core.list_namespaced_event(namespace).items
            if e.reason == "NotificationFailed" and e.involved_object.name == name]


def test_receivers_hear_of_releases_freezes_and_break_glass_and_never_hold_a_release(
        operator, receivers, core, custom, apps, namespace):
    urls = {"chat": f"{receivers.url}/ok/slack/{TOKEN}", "hook": f"{receivers.url}/ok/hook/{TOKEN}",
            "broken": f"{receivers.url}/fail/{TOKEN}", "stuck": f"{receivers.url}/hang/{TOKEN}"}
    core.create_namespaced_secret(namespace, {"metadata": {"name": "hooks"}, "data": {
        name: base64.b64encode(url.encode()).decode() for name, url in urls.items()}})
    notifications = [receiver("chat", "Slack", namespace), receiver("hook", "Webhook", namespace),
                     receiver("broken", "Webhook", namespace, events=["Promoted"]),
                     receiver("stuck", "Webhook", namespace)]  # hears everything, answers nothing
    policy = govern(custom, apps, namespace, notifications=notifications)
    try:
        # A good release is promoted, and the pass that promotes it goes on to release the Deployment at once:
        # a notifier that blocked it would hold it for the hanging receiver's three 5 s attempts.
        change(apps, namespace, "app:2.0", GOOD)
        promoted = final_release(custom, namespace)
        assert promoted["status"]["phase"] == "Promoted"
        wait_for(lambda: (d := apps.read_namespaced_deployment("shop", namespace)).spec.template.spec.containers[0]
                 .image == "app:2.0" and not d.spec.paused, 8, "the promotion waited for the receivers")
        name = promoted["metadata"]["name"]

        (slack,) = wait_for(lambda: receivers.sent("/ok/slack/", "Promoted"), 60, "Slack never heard of the promotion")
        assert slack["text"].startswith(f":white_check_mark: *Promoted* Release {name} of Deployment {namespace}/shop")
        (hook,) = wait_for(lambda: receivers.sent("/ok/hook/", "Promoted"), 60, "the webhook never heard of it")
        assert (hook["event"], hook["policy"], hook["object"]) == (
            "Promoted", policy, {"kind": "Release", "namespace": namespace, "name": name})
        assert hook["details"]["images"] == ["app:2.0"] and hook["details"]["tier"] == "low"

        # Both failed deliveries are Warning events on the release, without the URL's secret path.
        events = wait_for(lambda: len(failures(core, namespace, name)) == 2 and failures(core, namespace, name), 60,
                          "the failed deliveries never became events")
        messages = sorted(e.message for e in events)
        assert all(TOKEN not in m and e.type == "Warning" for m, e in zip(messages, events, strict=True))
        assert "receiver broken of ReleasePolicy" in messages[0] and "too many 500 error responses" in messages[0]
        assert "receiver stuck" in messages[1] and "timed out" in messages[1]
        assert f"Secret {namespace}/hooks key stuck" in messages[1]
        assert receivers.failed_attempts == 3  # retried with backoff, then given up

        # A rollback carries the verdict's numbers.
        change(apps, namespace, "app:3.0-bad", BAD)
        rolled = final_release(custom, namespace, count=2)
        assert rolled["status"]["phase"] == "RolledBack"
        (hook,) = wait_for(lambda: receivers.sent("/ok/hook/", "RolledBack"), 60, "no word of the rollback")
        assert hook["details"]["analysis"]["verdict"] == "Fail"
        assert hook["details"]["analysis"]["canary"]["errorRate"] > FAST_TIER["maxErrorRate"]
        assert "Fail, canary " in hook["summary"] and "% errors of " in hook["summary"]

        # A freeze: the refused change (once, however often it is retried), then the change that breaks glass.
        now = datetime.now(UTC).replace(microsecond=0)
        window = {"name": "launch", "tiers": ["low"], "start": (now - timedelta(hours=1)).isoformat(),
                  "end": (now + timedelta(hours=1)).isoformat()}
        custom.patch_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy,
                                           {"spec": {"freezeWindows": [window]}})
        frozen = {"spec": {"template": {"metadata": {"annotations": {**GOOD, "v": "4"}}}}}

        def refused(dry_run=None):
            try:
                apps.patch_namespaced_deployment("shop", namespace, frozen, dry_run=dry_run)
            except kubernetes.client.ApiException as error:
                return error.status == 403
            return False
        wait_for(lambda: refused("All"), 30, "the freeze never refused the change")
        for _ in range(2):  # admission answers at once, though the hanging receiver hears of the refusal
            started = time.monotonic()
            assert refused()
            assert time.monotonic() - started < 5
        (chat,) = wait_for(lambda: receivers.sent("/ok/slack/", "FreezeRefused"), 60, "no word of the refusal")
        assert chat["text"].startswith(":snowflake: *FreezeRefused* A change by admin to Deployment "
                                       f"{namespace}/shop (low tier) was refused by freeze window launch")
        apps.patch_namespaced_deployment("shop", namespace, {
            **frozen, "metadata": {"annotations": {"ballast.dev/emergency": "INC-99 hotfix"}}})
        (glass,) = wait_for(lambda: receivers.sent("/ok/hook/", "BreakGlass"), 60, "no word of the break-glass")
        assert glass["summary"] == (f"admin broke glass on Deployment {namespace}/shop through freeze window launch "
                                    f"(ReleasePolicy {policy}): INC-99 hotfix")
        wait_for(lambda: receivers.sent("/ok/slack/", "BreakGlass"), 60, "Slack never heard of the break-glass")
        # The retried refusal was not sent again: it would have been queued before the break-glass.
        assert len(receivers.sent("/ok/slack/", "FreezeRefused")) == 1
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy)
