"""Property-based tests of recurring freeze windows, in any time zone, mostly around clock changes.

The reference is deliberately naive and independent of the implementation: it walks back minute by
minute over the last ``duration`` of elapsed time and asks croniter whether the clocks of the zone showed a
scheduled time at that instant (or skipped over one just before it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.api.releasepolicy import FreezeWindow
from ballast.policy.freeze import open_occurrence

MINUTE = timedelta(minutes=1)
ZONES = sorted(available_timezones() - {"Factory", "localtime"})
# Zones with uncommon clock changes: half-hour DST, a two-hour DST, southern hemisphere, 45-minute offsets.
CHANGING = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Antarctica/Troll", "America/Santiago",
            "Pacific/Chatham", "Australia/Sydney", "America/Havana"]


@cache
def clock_changes(zone: ZoneInfo, year: int) -> list[datetime]:
    """Instants (to the minute) in ``year`` at which the zone's UTC offset changes."""
    changes, previous = [], datetime(year, 1, 1, tzinfo=UTC)
    for hours in range(1, 366 * 24):
        current = datetime(year, 1, 1, tzinfo=UTC) + timedelta(hours=hours)
        if current.astimezone(zone).utcoffset() != previous.astimezone(zone).utcoffset():
            low, high = previous, current
            while high - low > MINUTE:
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle.astimezone(zone).utcoffset() == low.astimezone(zone).utcoffset():
                    low = middle
                else:
                    high = middle
            changes.append(high)
        previous = current
    return changes


def naive_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def reference_start(schedule: str, zone: ZoneInfo, duration: timedelta, now: datetime) -> datetime | None:
    """The latest instant in (now - duration, now] at which the window opened, minute by minute."""
    instant = now.replace(second=0, microsecond=0)
    while instant > now - duration:
        shown = naive_wall(instant, zone)
        if croniter.match(schedule, shown):
            return instant
        # Did the clocks just jump over a scheduled time? Then the window opened as they jumped.
        skipped = naive_wall(instant - MINUTE, zone) + MINUTE
        while skipped < shown:
            if croniter.match(schedule, skipped):
                return instant
            skipped += MINUTE
        instant -= MINUTE
    return None


schedules = st.one_of(
    st.builds(lambda m, h: f"{m} {h} * * *", st.integers(0, 59), st.integers(0, 23)),
    st.builds(lambda m, h, d: f"{m} {h} * * {d}", st.integers(0, 59), st.integers(0, 23), st.integers(0, 6)),
    st.builds(lambda m, step: f"{m} */{step} * * *", st.integers(0, 59), st.integers(1, 6)),
    st.builds(lambda m: f"{m} * * * *", st.sampled_from(["0", "15,45", "*/20", "59"])),
)


@st.composite
def instants_in(draw: st.DrawFn, zone_names: list[str]) -> tuple[ZoneInfo, datetime]:
    zone = ZoneInfo(draw(st.sampled_from(zone_names)))
    year = draw(st.sampled_from([2026, 2027]))
    changes = clock_changes(zone, year)
    if changes and draw(st.booleans()):
        base = draw(st.sampled_from(changes))
        now = base + timedelta(seconds=draw(st.integers(-2 * 86400, 2 * 86400)))
    else:
        now = datetime(year, 1, 3, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 360 * 86400)))
    return zone, now


def check(schedule: str, minutes: int, zone: ZoneInfo, now: datetime) -> None:
    duration = timedelta(minutes=minutes)
    window = FreezeWindow.model_validate({"name": "w", "schedule": schedule, "duration": f"{minutes}m",
                                          "timeZone": zone.key})
    found = open_occurrence(window, now)
    expected = reference_start(schedule, zone, duration, now)
    if expected is None:
        assert found is None, (found, now)
    else:
        assert found is not None, (expected, now)
        assert found.started_at == expected
        assert found.ends_at - found.started_at == duration  # elapsed time, clock changes or not
        assert found.started_at <= now < found.ends_at


@settings(max_examples=150, deadline=None)
@given(schedules, st.integers(1, 26 * 60), instants_in(CHANGING))
def test_an_occurrence_is_open_exactly_for_its_duration_around_clock_changes(schedule, minutes, zone_and_now):
    check(schedule, minutes, *zone_and_now)


@settings(max_examples=100, deadline=None)
@given(schedules, st.integers(1, 26 * 60), instants_in(ZONES))
def test_an_occurrence_is_open_exactly_for_its_duration_in_any_zone(schedule, minutes, zone_and_now):
    check(schedule, minutes, *zone_and_now)
