"""Users for real pods: requests at a set rate to a URL (a Service's ClusterIP), counted by what came back.

The harness's own witness of what users saw, apart from what the pods report to Prometheus: a
release test can check that a rollback really spared users, not only that the pods' counters say so.
Each request opens a new connection, so kube-proxy spreads them over all ready pods as it would
spread many users; requests go out on a fixed schedule from a thread pool, so slow answers do not
lower the rate. The request itself is the kind demo's load generator's (deploy/kind/demo-app/loadgen.py),
so what the harness counts is what the demo counts. With `count_versions` each answer's body is read
too, for the version that answered ("recommendations <VERSION>: <code>"): a traffic split is counted by
what users got, whoever split it (tests/harness/gateway.py).
"""

from __future__ import annotations

import importlib.util
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "ballast_kind_loadgen", Path(__file__).resolve().parents[2] / "deploy" / "kind" / "demo-app" / "loadgen.py")
assert _spec is not None and _spec.loader is not None
_kind_loadgen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_kind_loadgen)
hit = _kind_loadgen.hit
"""hit(url) -> the HTTP status, or 0 when nothing answered within 2 s."""
DEMO_ANSWER = "recommendations "


def hit_version(url: str) -> tuple[int, str]:
    """Like hit(), and the version that answered: the demo app's VERSION from its answer's body ("" when the
    body is not the demo app's, e.g. a proxy's own 503)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status, body = response.status, response.read(200)
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read(200)
    except OSError:
        return 0, ""
    text = body.decode(errors="replace")
    return status, text[len(DEMO_ANSWER):].rsplit(":", 1)[0] if text.startswith(DEMO_ANSWER) else ""


@dataclass(frozen=True)
class Answer:
    sent: float
    """time.monotonic() when the request went out."""
    status: int
    version: str = ""
    """The demo app's version that answered (only with count_versions; "" for no answer or not the app)."""


class LoadGenerator:
    """`with LoadGenerator(url, rps) as load:` sends until the block ends; then read `load.counts()`."""

    def __init__(self, url: str, rps: float, workers: int = 16, count_versions: bool = False) -> None:
        self.url = url
        self.rps = rps
        self.count_versions = count_versions
        self._workers = workers
        self._answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: float | None = None
        self.stopped: float | None = None

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="loadgen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and wait for the answers in flight (at most hit()'s 2 s timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.stopped = time.monotonic()

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            next_at = time.monotonic()
            while not self._stop.is_set():
                pool.submit(self._send, time.monotonic())
                next_at += 1 / self.rps
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _send(self, sent: float) -> None:
        answer = Answer(sent, *hit_version(self.url)) if self.count_versions else Answer(sent, hit(self.url))
        with self._lock:
            self._answers.append(answer)

    def answers(self, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        with self._lock:
            return [a for a in self._answers if since <= a.sent < until]

    def counts(self, since: float = 0.0, until: float = float("inf")) -> dict[int, int]:
        """Answers by status (0 = no answer) for requests sent in [since, until) (time.monotonic())."""
        return dict(sorted(Counter(a.status for a in self.answers(since, until)).items()))

    def versions(self, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
        """Answers by the version that gave them ("" = none of the app's), like counts(); needs count_versions."""
        assert self.count_versions, "LoadGenerator(count_versions=True) reads which version answered"
        return dict(sorted(Counter(a.version for a in self.answers(since, until)).items()))


def errors(counts: dict[int, int]) -> int:
    """What users saw fail: 5xx answers and requests nobody answered."""
    return sum(n for status, n in counts.items() if status >= 500 or status == 0)
