"""Passes asked for by the clock start only once the indexes are filled, in the context of kopf's handlers.

At 10,000 Deployments kopf takes longer to list and index everything than one resync period; a policy pass
asked for before that judged half-listed indexes and could not post its condition events (``kopf.event``
needs the context kopf sets for handlers), found by ``benchmarks/scale.py``.
"""

from __future__ import annotations

import asyncio
import contextvars
from types import SimpleNamespace
from typing import Any

from ballast.controllers import startup
from ballast.controllers.toggles import UnparkedToggleSet
from ballast.controllers.triggers import keep_handler_context

HANDLER = contextvars.ContextVar("handler", default="outside kopf's handlers")


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[Any, str]] = []

    def request(self, key: Any, after: float | None = None) -> None:
        self.requests.append((key, HANDLER.get()))


def test_resync_waits_for_the_filled_indexes_and_asks_in_the_handlers_context():
    async def scenario() -> list[tuple[Any, str]]:
        indexed = UnparkedToggleSet(all)  # kopf's set of indexed kinds, as the operator has it built
        listing = await indexed.make_toggle(name="deployments listed")
        runtime = SimpleNamespace(options=SimpleNamespace(resync_seconds=0.01), policy_reconciler=Recorder(),
                                  indexes_filled=asyncio.Event(), handler_called=asyncio.Event(),
                                  handler_context=None)
        marking = asyncio.create_task(startup._mark_indexes_filled(runtime))
        resync = asyncio.create_task(startup._resync(runtime))

        def handler_call() -> None:  # kopf runs handlers while it still lists
            HANDLER.set("in a handler")
            keep_handler_context(runtime)
        contextvars.copy_context().run(handler_call)
        await asyncio.sleep(0.05)  # five resync periods while kopf is still listing
        assert runtime.policy_reconciler.requests == [] and not runtime.indexes_filled.is_set()

        await indexed.drop_toggle(listing)
        await asyncio.wait_for(_until(lambda: runtime.policy_reconciler.requests), 5)
        resync.cancel()
        await marking
        return runtime.policy_reconciler.requests

    requests = asyncio.run(scenario())
    assert requests and set(requests) == {("all", "in a handler")}


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.005)
