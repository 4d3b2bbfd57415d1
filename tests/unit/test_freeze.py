"""Freeze windows at instants around their edges, across midnight, weekends, time zones and DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ballast.api.common import RiskTier
from ballast.api.releasepolicy import FreezeRefusal, FreezeWindow
from ballast.policy.freeze import MAX_REFUSALS, freezing, open_occurrence, open_windows, record_refusals


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def recurring(schedule: str, duration: str, tz: str = "UTC", tiers=None) -> FreezeWindow:
    fields = {"name": "w", "schedule": schedule, "duration": duration, "timeZone": tz}
    if tiers is not None:
        fields["tiers"] = tiers
    return FreezeWindow.model_validate(fields)


ABSOLUTE = FreezeWindow.model_validate(
    {"name": "launch", "start": "2026-11-27T00:00:00Z", "end": "2026-11-30T06:00:00Z", "tiers": ["critical", "high"]}
)


@pytest.mark.parametrize(("instant", "open_"), [
    ("2026-11-26T23:59:59+00:00", False),
    ("2026-11-27T00:00:00+00:00", True),    # start is inclusive
    ("2026-11-29T12:00:00+00:00", True),
    ("2026-11-30T05:59:59+00:00", True),
    ("2026-11-30T06:00:00+00:00", False),   # end is exclusive
    ("2026-11-27T01:00:00+02:00", False),   # 23:00 UTC the day before
    ("2026-11-27T03:00:00+02:00", True),    # 01:00 UTC
])
def test_absolute_window_edges(instant, open_):
    assert (open_occurrence(ABSOLUTE, at(instant)) is not None) is open_


def test_absolute_window_reports_its_end():
    found = open_occurrence(ABSOLUTE, at("2026-11-28T00:00:00+00:00"))
    assert found is not None and found.ends_at == at("2026-11-30T06:00:00+00:00")


def test_naive_instant_refused():
    with pytest.raises(ValueError):
        open_occurrence(ABSOLUTE, datetime(2026, 11, 28))


# Nightly 22:00 for 4 hours: spans midnight.
NIGHTLY = recurring("0 22 * * *", "4h")


@pytest.mark.parametrize(("instant", "open_"), [
    ("2026-11-23T21:59:59+00:00", False),
    ("2026-11-23T22:00:00+00:00", True),
    ("2026-11-23T23:59:00+00:00", True),
    ("2026-11-24T00:30:00+00:00", True),     # after midnight, from yesterday's occurrence
    ("2026-11-24T01:59:59+00:00", True),
    ("2026-11-24T02:00:00+00:00", False),
    ("2026-11-24T12:00:00+00:00", False),
])
def test_recurring_window_across_midnight(instant, open_):
    assert (open_occurrence(NIGHTLY, at(instant)) is not None) is open_


# Weekend freeze: Friday 18:00 Berlin time for 62 hours (to Monday 08:00).
WEEKEND = recurring("0 18 * * 5", "62h", "Europe/Berlin")


@pytest.mark.parametrize(("instant", "open_"), [
    ("2026-11-27T16:59:00+00:00", False),   # Friday 17:59 Berlin (UTC+1)
    ("2026-11-27T17:00:00+00:00", True),    # Friday 18:00 Berlin
    ("2026-11-28T12:00:00+00:00", True),    # Saturday
    ("2026-11-29T23:00:00+00:00", True),    # Monday 00:00 Berlin
    ("2026-11-30T06:59:00+00:00", True),    # Monday 07:59 Berlin
    ("2026-11-30T07:00:00+00:00", False),   # Monday 08:00 Berlin
    ("2026-12-02T12:00:00+00:00", False),   # Wednesday
])
def test_weekend_window_in_a_time_zone(instant, open_):
    assert (open_occurrence(WEEKEND, at(instant)) is not None) is open_


def test_weekend_window_follows_summer_time():
    # In July Berlin is UTC+2: Friday 18:00 Berlin is 16:00 UTC.
    assert open_occurrence(WEEKEND, at("2026-07-03T15:59:00+00:00")) is None
    assert open_occurrence(WEEKEND, at("2026-07-03T16:00:00+00:00")) is not None


def test_duration_is_elapsed_time_across_a_dst_change():
    # Berlin leaves summer time on Sunday 2026-10-25 at 03:00 local (01:00 UTC).
    # Opening Saturday 2026-10-24 20:00 local (18:00 UTC) for 10 h ends at 04:00 UTC = 05:00 local (winter).
    window = recurring("0 20 * * 6", "10h", "Europe/Berlin")
    found = open_occurrence(window, at("2026-10-25T03:00:00+00:00"))
    assert found is not None
    assert found.started_at == at("2026-10-24T18:00:00+00:00")
    assert found.ends_at == at("2026-10-25T04:00:00+00:00")
    assert open_occurrence(window, at("2026-10-25T04:00:00+00:00")) is None


def test_occurrence_in_the_skipped_spring_hour_still_opens():
    # 02:30 does not exist in Berlin on 2026-03-29; the window must still open that night, not vanish.
    window = recurring("30 2 * * *", "2h", "Europe/Berlin")
    found = open_occurrence(window, at("2026-03-29T02:00:00+00:00"))  # 04:00 local summer time
    assert found is not None
    assert found.ends_at - found.started_at == timedelta(hours=2)


def test_window_longer_than_its_period_stays_open():
    hourly_for_two_hours = recurring("0 * * * *", "2h")
    assert open_occurrence(hourly_for_two_hours, at("2026-11-23T10:30:00+00:00")) is not None


def test_freezing_checks_tiers_and_picks_latest_end():
    short = FreezeWindow.model_validate({"name": "short", "start": "2026-11-28T00:00:00Z",
                                         "end": "2026-11-28T06:00:00Z", "tiers": ["critical"]})
    instant = at("2026-11-28T01:00:00+00:00")
    assert freezing([ABSOLUTE, short], RiskTier.CRITICAL, instant).window.name == "launch"
    assert freezing([ABSOLUTE, short], RiskTier.HIGH, instant).window.name == "launch"
    assert freezing([ABSOLUTE, short], RiskTier.LOW, instant) is None


def test_open_windows_lists_only_open_ones():
    instant = at("2026-11-28T12:00:00+00:00")  # Saturday, both open
    assert [w.window.name for w in open_windows([ABSOLUTE, NIGHTLY, WEEKEND], instant)] == ["launch", "w"]
    assert open_windows([], datetime.now(UTC)) == []


def refusal(at: datetime, name: str = "checkout", revision: str = "r1", window: str = "weekend") -> FreezeRefusal:
    return FreezeRefusal(at=at, kind="Deployment", namespace="shop", name=name, revision=revision, team="payments",
                         tier=RiskTier.CRITICAL, window=window, username="bob")


def test_a_retried_change_counts_once_at_its_first_refusal():
    now = at("2026-11-28T12:00:00Z")
    first, retry = refusal(now - timedelta(minutes=5)), refusal(now)
    assert record_refusals([first], [retry], now) == [first]
    other_change = refusal(now, revision="r2")
    other_window = refusal(now, window="year-end")
    assert record_refusals([first], [other_change, other_window], now) == [first, other_change, other_window]


def test_refusals_older_than_35_days_are_dropped_and_the_list_is_bounded():
    now = at("2026-11-28T12:00:00Z")
    old, recent = refusal(now - timedelta(days=36), name="old"), refusal(now - timedelta(days=34), name="recent")
    assert record_refusals([old, recent], [], now) == [recent]
    many = [refusal(now - timedelta(minutes=i), name=f"svc-{i}") for i in range(MAX_REFUSALS + 10)]
    kept = record_refusals([], many, now)
    assert len(kept) == MAX_REFUSALS
    assert kept[-1].name == "svc-0" and kept[0].name == f"svc-{MAX_REFUSALS - 1}"  # the newest, oldest first


def test_a_fall_back_does_not_close_a_window_early():
    # Berlin's clocks go back from 03:00 to 02:00 on Sunday 2026-10-25 (01:00 UTC). A window opening at 02:30
    # for 2 hours opens at the first 02:30 (00:30 UTC) and stays open until 02:30 UTC, through the second
    # reading of 02:00 (01:00 UTC), which croniter alone took for a time before that day's 02:30.
    window = recurring("30 2 * * *", "2h", "Europe/Berlin")
    for instant in ("2026-10-25T00:30:00+00:00", "2026-10-25T01:00:00+00:00", "2026-10-25T01:20:00+00:00"):
        found = open_occurrence(window, at(instant))
        assert found is not None, instant
        assert found.started_at == at("2026-10-25T00:30:00+00:00")
    # The clocks show 02:30 a second time (01:30 UTC): the window opens again then, for 2 hours.
    second = open_occurrence(window, at("2026-10-25T03:29:00+00:00"))
    assert second is not None and second.started_at == at("2026-10-25T01:30:00+00:00")
    assert open_occurrence(window, at("2026-10-25T03:30:00+00:00")) is None


def test_an_hourly_window_opens_in_both_readings_of_the_repeated_hour():
    hourly = recurring("0 * * * *", "30m", "Europe/Berlin")
    for instant in ("2026-10-25T00:10:00+00:00", "2026-10-25T01:10:00+00:00", "2026-10-25T02:10:00+00:00"):
        found = open_occurrence(hourly, at(instant))
        assert found is not None and found.started_at == at(instant) - timedelta(minutes=10), instant


def test_a_skipped_occurrence_opens_as_the_clocks_jump():
    window = recurring("30 2 * * *", "2h", "Europe/Berlin")  # 02:30 never shows on 2026-03-29
    assert open_occurrence(window, at("2026-03-29T00:59:59+00:00")) is None
    found = open_occurrence(window, at("2026-03-29T01:00:00+00:00"))  # 01:59:59 CET is followed by 03:00 CEST
    assert found is not None and found.started_at == at("2026-03-29T01:00:00+00:00")
    assert found.ends_at == at("2026-03-29T03:00:00+00:00")
