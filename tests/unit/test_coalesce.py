"""The Coalescer: one pass per burst of requests, never two passes of one key at once, retries on failure."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ballast.controllers.coalesce import Coalescer


class Passes:
    """A reconcile function that records its passes and can be held inside one until released."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.finished: list[Any] = []
        self.running: set[Any] = set()
        self.overlapped = False
        self.gate: asyncio.Event | None = None
        self.fail_first = 0

    async def __call__(self, key: Any) -> None:
        if key in self.running:
            self.overlapped = True
        self.running.add(key)
        self.started.append(key)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_first:
                self.fail_first -= 1
                raise RuntimeError("the API server said no")
        finally:
            self.running.discard(key)
        self.finished.append(key)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_a_burst_of_requests_is_one_pass():
    async def scenario() -> None:
        passes = Passes()
        coalescer = Coalescer(passes, delay=0.01)
        for _ in range(100):
            coalescer.request("shop")
        await until(lambda: passes.finished == ["shop"])
        await asyncio.sleep(0.05)  # nothing else was queued behind it
        assert passes.started == ["shop"]
        await coalescer.close()
    run(scenario)


def test_a_request_during_a_pass_gets_exactly_one_more_pass_after_it_never_alongside():
    async def scenario() -> None:
        passes = Passes()
        passes.gate = asyncio.Event()
        coalescer = Coalescer(passes, delay=0)
        coalescer.request("shop")
        await until(lambda: passes.started == ["shop"])
        for _ in range(10):  # the running pass may have read already: these need a fresh one
            coalescer.request("shop")
        await asyncio.sleep(0.02)
        assert passes.started == ["shop"]  # the second waits for the first
        passes.gate.set()
        await until(lambda: passes.finished == ["shop", "shop"])
        await asyncio.sleep(0.02)
        assert passes.started == ["shop", "shop"] and not passes.overlapped
        await coalescer.close()
    run(scenario)


def test_different_keys_do_not_wait_for_each_other():
    async def scenario() -> None:
        passes = Passes()
        passes.gate = asyncio.Event()
        coalescer = Coalescer(passes, delay=0)
        coalescer.request("shop")
        coalescer.request("search")
        await until(lambda: sorted(passes.running) == ["search", "shop"])
        passes.gate.set()
        await until(lambda: sorted(passes.finished) == ["search", "shop"])
        await coalescer.close()
    run(scenario)


def test_a_later_request_waits_and_the_earliest_of_several_wins():
    async def scenario() -> None:
        passes = Passes()
        coalescer = Coalescer(passes, delay=0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        coalescer.request("shop", after=30)
        coalescer.request("shop", after=0.05)
        coalescer.request("shop", after=10)  # later than the one already due: changes nothing
        await until(lambda: passes.finished == ["shop"])
        assert 0.04 <= loop.time() - started < 5
        await asyncio.sleep(0.05)
        assert passes.finished == ["shop"]  # the 30 s and 10 s requests were folded into the earlier one
        await coalescer.close()
    run(scenario)


def test_a_failed_pass_is_retried_in_five_seconds():
    async def scenario() -> None:
        passes = Passes()
        passes.fail_first = 1
        retries: list[tuple[Any, float | None]] = []

        class Recording(Coalescer[str]):
            def request(self, key: str, after: float | None = None) -> None:
                retries.append((key, after))
                super().request(key, after)

        coalescer = Recording(passes, delay=0)
        coalescer.request("shop")
        await until(lambda: ("shop", 5) in retries)
        assert passes.started == ["shop"] and passes.finished == []
        await coalescer.close()
    run(scenario)


def test_close_cancels_what_is_pending():
    async def scenario() -> None:
        passes = Passes()
        coalescer = Coalescer(passes, delay=0.05)
        coalescer.request("shop")
        coalescer.request("search", after=0.1)
        await coalescer.close()
        await asyncio.sleep(0.2)
        assert passes.started == []
    run(scenario)


@pytest.mark.parametrize("after", [None, 0.0, 0.01])
def test_a_request_no_later_than_the_delay_is_an_ordinary_one(after):
    async def scenario() -> None:
        passes = Passes()
        coalescer = Coalescer(passes, delay=0.02)
        coalescer.request("shop", after=after)
        coalescer.request("shop")
        await until(lambda: passes.finished == ["shop"])
        await asyncio.sleep(0.05)
        assert passes.started == ["shop"]
        await coalescer.close()
    run(scenario)
