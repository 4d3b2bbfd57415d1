"""kopf's start-up at 10,000 objects: wake the objects waiting for the filled indexes once, not per object.

While kopf lists a resource kind that has indexers, it gives every listed object a toggle in one
``ToggleSet`` (``operator_indexed``), drops it once the object is indexed, and makes the object's worker
wait until every toggle is gone before any handler runs. kopf 1.45's ``ToggleSet`` wakes *every* waiting
worker on every toggle it adds or drops, so N listed objects cost N² wake-ups: at 10,000 Deployments and
10,000 ServiceOwnerships that was most of the operator's start-up (profiled in ``benchmarks/README.md``).

A waiter of a ``ToggleSet`` waits for the set's state (``is_on()``), and a waiter of one ``Toggle`` for
that toggle's own state; adding or dropping a toggle changes no toggle's state and the set's only
sometimes. :class:`QuietToggleSet` notifies only then, so every wait ends exactly as before.
"""

from __future__ import annotations

import logging
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


def quiet_toggle_sets() -> None:
    """Make kopf build its toggle sets as :class:`QuietToggleSet` (it looks the class up when it starts)."""
    probe = aiotoggles.ToggleSet(all)
    if not all(hasattr(probe, attribute) for attribute in ("_condition", "_toggles", "is_on")):
        logger.warning("kopf's ToggleSet has changed shape; start-up at many objects stays quadratic.")
        return
    aiotoggles.ToggleSet = QuietToggleSet  # type: ignore[misc]
