"""kopf's toggle sets, woken only when their state changes: every wait ends as with kopf's own; and its set of
indexed kinds parks no worker, while the operator still learns when every index is filled."""

from __future__ import annotations

import asyncio

from kopf._cogs.aiokits import aiotoggles

import ballast.controllers.startup  # noqa: F401  (installs the quiet toggle sets, as the operator does)
from ballast.controllers.toggles import QuietToggleSet, UnparkedToggleSet, kopf_indexed


def test_the_operator_makes_kopf_build_quiet_unparked_toggle_sets():
    assert aiotoggles.ToggleSet is UnparkedToggleSet and issubclass(UnparkedToggleSet, QuietToggleSet)


def counting(toggles: QuietToggleSet) -> list[int]:
    calls = [0]
    notify_all = toggles._condition.notify_all

    def counted() -> None:
        calls[0] += 1
        notify_all()
    toggles._condition.notify_all = counted  # type: ignore[method-assign]
    return calls


def test_objects_waiting_for_the_filled_indexes_are_woken_once_when_the_last_toggle_goes():
    async def scenario() -> tuple[list[int], int]:
        indexed = QuietToggleSet(all)
        listing = await indexed.make_toggle(name="deployments listed")
        woken = counting(indexed)
        objects = [await indexed.make_toggle(name=f"object {i}") for i in range(100)]
        waiters = [asyncio.create_task(indexed.wait_for(True)) for _ in objects]
        for toggle in objects:  # each object indexed, in turn
            await indexed.drop_toggle(toggle)
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)  # the listing is not over yet
        await indexed.drop_toggle(listing)
        await asyncio.wait_for(asyncio.gather(*waiters), 5)
        return woken, len(indexed)

    woken, left = asyncio.run(scenario())
    assert woken == [1] and left == 0  # kopf's own ToggleSet notifies 201 times here


def test_a_waiter_for_the_off_state_of_an_any_set_wakes_when_a_toggle_turns_it_on():
    async def scenario() -> bool:
        paused = QuietToggleSet(any)
        await paused.make_toggle(False, name="peer")
        waiter = asyncio.create_task(paused.wait_for(True))
        await asyncio.sleep(0)
        assert not waiter.done()
        await paused.make_toggle(True, name="another peer")
        await asyncio.wait_for(waiter, 5)
        await paused.drop_toggles(list(paused))
        return paused.is_on()

    assert asyncio.run(scenario()) is False


def test_a_toggle_turned_on_still_wakes_the_set_waiters():
    async def scenario() -> None:
        indexed = QuietToggleSet(all)
        toggle = await indexed.make_toggle(name="deployments listed")
        waiter = asyncio.create_task(indexed.wait_for(True))
        await asyncio.sleep(0)
        await toggle.turn_to(True)
        await asyncio.wait_for(waiter, 5)

    asyncio.run(scenario())


def test_a_worker_is_let_through_the_indexed_set_at_once_and_the_operator_learns_when_it_is_filled():
    async def scenario() -> None:
        indexed = UnparkedToggleSet(all)  # kopf's operator_indexed: the one ToggleSet(all) it makes
        filled = asyncio.create_task(kopf_indexed())
        await asyncio.sleep(0.1)
        assert not filled.done()  # empty, so on, but kopf has not begun: not filled
        blocker = await indexed.make_toggle(name="orchestration blocker")
        listing = await indexed.make_toggle(name="deployments listed")
        await indexed.drop_toggle(blocker)
        await asyncio.wait_for(indexed.wait_for(True), 1)  # a worker's park: none
        await asyncio.sleep(0.1)
        assert not filled.done()  # still listing
        await indexed.drop_toggle(listing)
        await asyncio.wait_for(filled, 5)

    asyncio.run(scenario())


def test_other_toggle_sets_wait_as_kopfs_own():
    async def scenario() -> None:
        paused = UnparkedToggleSet(any)  # kopf's operator_paused: daemons wait on it
        await paused.make_toggle(False, name="peer")
        waiter = asyncio.create_task(paused.wait_for(True))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        waiter.cancel()

    asyncio.run(scenario())
