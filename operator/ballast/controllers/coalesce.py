"""Coalesce bursts of change notifications into one reconciliation per key, never two at once.

A namespace with hundreds of Deployments produces hundreds of events at start-up or during a
rollout; recomputing a status once per burst is enough because reconciliation is level-based (it
reads the current state, not the event). Passes for the same key never overlap, so a reconciler can
read, decide and write without racing itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class Coalescer(Generic[K]):
    """Runs ``reconcile(key)`` shortly after ``request(key)``, once for any number of requests meanwhile."""

    def __init__(self, reconcile: Callable[[K], Awaitable[None]], delay: float = 0.2) -> None:
        self._reconcile = reconcile
        self._delay = delay
        self._pending: set[K] = set()
        self._locks: dict[K, asyncio.Lock] = {}
        self._users: dict[K, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def request(self, key: K, after: float | None = None) -> None:
        """Reconcile ``key`` soon, or after ``after`` seconds (the earliest of several such requests wins)."""
        if after is not None and after > self._delay:
            loop = asyncio.get_running_loop()
            timer = self._timers.get(key)
            due = loop.time() + after
            if timer is None or timer.when() > due:
                if timer is not None:
                    timer.cancel()
                self._timers[key] = loop.call_at(due, self._fire, key)
            return
        if key in self._pending:
            return
        self._pending.add(key)
        self._users[key] = self._users.get(key, 0) + 1
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.request(key)

    async def _run(self, key: K) -> None:
        try:
            await asyncio.sleep(self._delay)
            async with self._locks.setdefault(key, asyncio.Lock()):
                # Requests arriving from here on need a fresh pass: the one below may already have read.
                self._pending.discard(key)
                try:
                    await self._reconcile(key)
                except Exception:
                    # A failed pass is retried by the next event or resync; never lose the loop.
                    logger.exception("Reconciliation of %r failed; it is retried in 5 s or on the next change.", key)
                    self.request(key, after=5)
        finally:
            self._users[key] -= 1
            if not self._users[key]:  # nobody else holds or awaits this key's lock
                del self._users[key]
                self._locks.pop(key, None)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
