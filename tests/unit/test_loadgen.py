"""The harness's load generator (tests/harness/loadgen.py) against the demo app on this machine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.harness import loadgen, wait_for
from tests.unit.test_demo_app import app


@pytest.fixture
def demo() -> Iterator[app.DemoServer]:
    server = app.DemoServer(("127.0.0.1", 0), 0.0, "test")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_sends_at_the_set_rate_and_counts_every_answer(demo) -> None:
    with loadgen.LoadGenerator(f"http://127.0.0.1:{demo.server_port}/", rps=40) as load:
        time.sleep(1.5)
    counts = load.counts()
    assert set(counts) == {200}
    # A fixed schedule: 1.5 s at 40/s is 60 requests (+1 at t=0); a slow machine sends late, never fewer.
    assert 55 <= counts[200] <= 62, counts
    assert demo.counters.by_code["200"] == counts[200]  # the pod's view and the users' view agree


def test_counts_failures_and_windows_by_sending_time(demo) -> None:
    demo.error_ratio = 1.0
    load = loadgen.LoadGenerator(f"http://127.0.0.1:{demo.server_port}/", rps=20)
    with load:
        wait_for(lambda: load.counts().get(500, 0) >= 5, 10, "no failures answered")
        demo.error_ratio = 0.0
        middle = time.monotonic()  # sent after this: answered after the switch
        wait_for(lambda: load.counts(since=middle).get(200, 0) >= 5, 10, "no successes answered")
    before, after = load.counts(until=middle), load.counts(since=middle)
    assert before.get(500, 0) >= 5 and loadgen.errors(before) == before[500]
    assert set(after) == {200} and after[200] >= 5
    assert sum(before.values()) + sum(after.values()) == sum(load.counts().values())


def test_no_answer_is_status_zero_and_an_error() -> None:
    with loadgen.LoadGenerator("http://127.0.0.1:9/", rps=10) as load:  # port 9: nothing listens
        time.sleep(0.3)
    counts = load.counts()
    assert set(counts) == {0} and loadgen.errors(counts) == counts[0] >= 3


def test_counts_the_version_that_answered_when_asked(demo) -> None:
    load = loadgen.LoadGenerator(f"http://127.0.0.1:{demo.server_port}/", rps=40, count_versions=True)
    with load:
        wait_for(lambda: sum(load.versions().values()) >= 5, 10, "no answers")
        demo.version = "v2:rc1"  # a colon in the version: only the last one separates the status code
        switched = time.monotonic()
        wait_for(lambda: load.versions(since=switched).get("v2:rc1", 0) >= 5, 10, "v2:rc1 never answered")
    assert load.versions(until=switched).get("test", 0) >= 5  # (one in flight at the switch may read v2:rc1)
    assert set(load.versions(since=switched)) == {"v2:rc1"}
    assert loadgen.hit_version("http://127.0.0.1:9/") == (0, "")  # nothing listens: no answer, no version
    assert loadgen.hit_version(f"http://127.0.0.1:{demo.server_port}/healthz") == (200, "")  # not the app's answer
