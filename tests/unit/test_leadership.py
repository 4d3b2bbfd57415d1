"""The leader-election rules: who may take the Lease, judged by the candidate's own clock only."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from ballast.cli.operator import Election, Replica
from ballast.controllers.runtime import Acting
from ballast.kube.leadership import LeaseElector, LeaseRecord, Observation, _micro_time, may_take, observe

HELD_BY_A = LeaseRecord(holder="a", duration_seconds=15, renewed="2026-11-23T10:00:00.000000Z", transitions=3)


def test_a_candidate_may_take_a_lease_nobody_holds() -> None:
    released = LeaseRecord(holder="", duration_seconds=1, renewed="x", transitions=3)
    assert may_take(Observation(released, since=100.0), "b", now=100.0)


def test_the_holder_may_always_renew() -> None:
    assert may_take(Observation(HELD_BY_A, since=100.0), "a", now=100.0)


@pytest.mark.parametrize(("now", "expected"), [(100.0, False), (114.9, False), (115.0, True), (500.0, True)])
def test_another_holder_must_stay_silent_for_the_whole_duration(now: float, expected: bool) -> None:
    assert may_take(Observation(HELD_BY_A, since=100.0), "b", now=now) is expected


def test_a_renewal_restarts_the_wait_whatever_the_renew_time_says() -> None:
    first = observe(None, HELD_BY_A, now=100.0)
    # The holder's clock may be far behind ours: only the change matters, not the value.
    renewed = LeaseRecord("a", 15, "1999-01-01T00:00:00.000000Z", 3)
    second = observe(first, renewed, now=110.0)
    assert second.since == 110.0
    assert not may_take(second, "b", now=120.0)
    assert may_take(second, "b", now=125.0)


def test_an_unchanged_record_keeps_its_first_sighting() -> None:
    first = observe(None, HELD_BY_A, now=100.0)
    assert observe(first, HELD_BY_A, now=114.0) is first


def test_records_are_read_from_the_lease_spec_as_the_api_serves_it() -> None:
    spec = {"holderIdentity": "ballast-7d9f-x2", "leaseDurationSeconds": 15,
            "renewTime": "2026-11-23T10:00:00.000000Z", "leaseTransitions": 2}
    assert LeaseRecord.from_spec(spec) == LeaseRecord("ballast-7d9f-x2", 15, "2026-11-23T10:00:00.000000Z", 2)
    assert LeaseRecord.from_spec({}) == LeaseRecord("", 0, "", 0)


def test_micro_time_always_has_six_fractional_digits() -> None:
    assert _micro_time(datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)) == "2026-11-23T10:00:00.000000Z"


def test_timings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="retry < renew deadline < lease duration"):
        LeaseElector("ns", "ballast", "a", lease_seconds=10, renew_deadline_seconds=10, retry_seconds=2,
                     api=object())  # type: ignore[arg-type]


class FakeElector:
    """Holds the lease for ``terms`` keep() calls, then loses it; records what the replica did."""

    namespace = "ballast-system"

    def __init__(self, replica_log: list[str], terms: int) -> None:
        self.log, self.terms = replica_log, terms

    async def acquire(self) -> None:
        if self.terms == 0:
            await asyncio.Event().wait()  # never leads again: the test ends the campaign here
        self.log.append("acquired")

    async def keep(self) -> None:
        self.terms -= 1
        self.log.append("lost")

    async def release(self) -> None:
        self.log.append("released")


def test_a_leader_that_loses_the_lease_stops_acting_and_campaigns_again() -> None:
    async def scenario() -> tuple[list[str], bool]:
        log: list[str] = []
        acting = Acting(leading=False)
        replica = Replica(Election(FakeElector(log, terms=2), pod=None), {"memo": {}}, acting, drain_seconds=0)
        campaign = asyncio.create_task(replica._campaign(replica.election))
        while log.count("lost") < 2:
            await asyncio.sleep(0)
        campaign.cancel()
        await asyncio.gather(campaign, return_exceptions=True)
        return log, acting.leading
    log, leading = asyncio.run(scenario())
    assert log == ["acquired", "lost", "acquired", "lost"]
    assert not leading


def test_stepping_down_releases_the_lease_even_before_acting() -> None:
    async def scenario() -> list[str]:
        log: list[str] = []
        replica = Replica(Election(FakeElector(log, terms=1), pod=None), {"memo": {}}, Acting(leading=False),
                          drain_seconds=0)
        await replica._step_down()
        return log
    assert asyncio.run(scenario()) == ["released"]
