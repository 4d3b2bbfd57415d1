"""kopf's start-up at 10,000 objects: wake the objects waiting for the filled indexes once, not per object.

While kopf lists a resource kind that has indexers, it gives every listed object a toggle in one
``ToggleSet`` (``operator_indexed``), drops it once the object is indexed, and makes the object's worker
wait until every toggle is gone before any handler runs. kopf 1.45's ``ToggleSet`` wakes *every* waiting
worker on every toggle it adds or drops, so N listed objects cost N² wake-ups: at 10,000 Deployments and
10,000 ServiceOwnerships that was most of the operator's start-up (profiled in ``benchmarks/README.md``).

A waiter of a ``ToggleSet`` waits for the set's state (``is_on()``), and a waiter of one ``Toggle`` for
that toggle's own state; adding or dropping a toggle changes no toggle's state and the set's only
sometimes. :class:`QuietToggleSet` notifies only then, so every wait ends exactly as before.

Then the memory: each of those parked workers holds kopf's per-object state (its queue, events, coroutine
frames, loggers, patch; about 12 KiB even once ``controllers/shedding.py`` has shed the body), all of them at
once until the last object is indexed: 565 MiB at 10,000 Deployments with their ServiceOwnerships. Ballast
does not need the park. Its event handlers (``controllers/triggers.py``) only say where to look again, and
once the indexes are filled the operator asks for a pass over every key the indexes hold anyway
(``startup._act_on_leading``). So in :class:`UnparkedToggleSet`, kopf's set of indexed kinds (the only
``ToggleSet(all)`` kopf 1.45 makes: ``operator_indexed``, whose one waiter is each object's worker in
``processing.process_resource_event``) lets the worker through at once: the handler sees the indexes still
filling and asks for nothing, and the worker ends as soon as its events are handled. The operator learns
that the indexes are filled from :func:`kopf_indexed`, one wait on the same set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles

logger = logging.getLogger(__name__)


class QuietToggleSet(aiotoggles.ToggleSet):
    """A ToggleSet that wakes its waiters only when adding or dropping a toggle changes its state."""

    async def make_toggle(self, __val: bool = False, *, name: str | None = None) -> aiotoggles.Toggle:
        toggle = aiotoggles.Toggle(__val, name=name, condition=self._condition)
        async with self._condition:
            before = self.is_on()
            self._toggles.add(toggle)
            self._notify_if_changed(before)
        return toggle

    async def drop_toggle(self, toggle: aiotoggles.Toggle) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.discard(toggle)
            self._notify_if_changed(before)

    async def drop_toggles(self, toggles: Any) -> None:
        async with self._condition:
            before = self.is_on()
            self._toggles.difference_update(toggles)
            self._notify_if_changed(before)

    def _notify_if_changed(self, before: bool) -> None:
        if self.is_on() != before:
            self._condition.notify_all()


_indexed_sets: list[UnparkedToggleSet] = []
"""kopf's set of indexed kinds once it is made (one per operator run)."""


class UnparkedToggleSet(QuietToggleSet):
    """A quiet toggle set that, as kopf's set of indexed kinds, parks no worker (see the module doc)."""

    def __init__(self, fn: Callable[[Iterable[bool]], bool]) -> None:
        super().__init__(fn)
        self._indexed_kinds = fn is all  # operator_indexed; operator_paused is ToggleSet(any)
        self._toggled = False
        if self._indexed_kinds:
            _indexed_sets.append(self)

    async def make_toggle(self, __val: bool = False, *, name: str | None = None) -> aiotoggles.Toggle:
        self._toggled = True  # before the toggle goes in: its waiters are woken by the set turning off
        return await super().make_toggle(__val, name=name)

    async def wait_for(self, __state: bool) -> None:
        if self._indexed_kinds and __state:
            return  # an object's worker, waiting for every index to be filled before its handlers
        await super().wait_for(__state)

    async def indexed(self) -> None:
        """Return once every listed object of every indexed kind has been indexed.

        An empty set is on (``all([])``): so it is before kopf puts in its first toggle (the orchestration's
        blocker, held until every watcher has made its kind's toggle), which does not mean filled.
        """
        async with self._condition:
            await self._condition.wait_for(lambda: self._toggled and self.is_on())


async def kopf_indexed() -> None:
    """Return once kopf has listed and indexed every object of every indexed kind.

    Where the toggle sets could not be replaced, kopf parks every worker until then, so its first handler
    call is that moment: this returns at once and the caller waits for that call.
    """
    if aiotoggles.ToggleSet is not UnparkedToggleSet:
        return
    while not _indexed_sets:  # kopf makes it as its watchers start, after the operator's start-up handlers
        await asyncio.sleep(0.05)
    await _indexed_sets[-1].indexed()


def install_toggle_sets() -> None:
    """Make kopf build its toggle sets as :class:`UnparkedToggleSet` (it looks the class up when it starts)."""
    probe = aiotoggles.ToggleSet(all)
    if not all(hasattr(probe, attribute) for attribute in ("_condition", "_toggles", "is_on", "wait_for")):
        logger.warning("kopf's ToggleSet has changed shape; start-up at many objects stays quadratic and "
                       "holds every listed object's worker until all are indexed.")
        return
    aiotoggles.ToggleSet = UnparkedToggleSet  # type: ignore[misc]
