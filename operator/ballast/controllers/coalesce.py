"""Coalesce bursts of change notifications into one reconciliation per key.

A namespace with hundreds of Deployments produces hundreds of events at start-up or during a
rollout; recomputing a ServiceOwnership's status once per burst is enough because reconciliation
is level-based (it reads the current indexes, not the event).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable

logger = logging.getLogger(__name__)


class Coalescer:
    """Runs ``reconcile(key)`` shortly after ``request(key)``, once for any number of requests meanwhile."""

    def __init__(self, reconcile: Callable[[Hashable], Awaitable[None]], delay: float = 0.2) -> None:
        self._reconcile = reconcile
        self._delay = delay
        self._pending: set[Hashable] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, key: Hashable) -> None:
        if key in self._pending:
            return
        self._pending.add(key)
        task = asyncio.get_running_loop().create_task(self._run(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: Hashable) -> None:
        await asyncio.sleep(self._delay)
        # Requests arriving from here on need a fresh pass: the one below may already have read.
        self._pending.discard(key)
        try:
            await self._reconcile(key)
        except Exception:
            # A failed pass is retried by the next event or the periodic resync; never lose the loop.
            logger.exception("Reconciliation of %r failed; it is retried on the next change or resync.", key)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
