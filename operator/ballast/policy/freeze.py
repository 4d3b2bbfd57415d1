"""Freeze windows: is a tier frozen at a given instant, and until when?

Recurring windows open at each cron occurrence, read in the window's IANA time zone (so "Friday 18:00
in Europe/Berlin" follows daylight saving time), and stay open for ``duration`` of elapsed time: a
fall-back's repeated hour neither closes a window early nor stretches it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import ValidationError

from ballast.api.common import RiskTier, parse_duration
from ballast.api.releasepolicy import FreezeRefusal, FreezeWindow

REFUSALS_KEPT_FOR = timedelta(days=35)
"""Long enough for a monthly scoreboard; the weekly one needs 7 days."""
MAX_REFUSALS = 500


@dataclass(frozen=True)
class OpenWindow:
    """A freeze window that is open at the instant asked about."""

    window: FreezeWindow
    started_at: datetime
    ends_at: datetime


def open_occurrence(window: FreezeWindow, now: datetime) -> OpenWindow | None:
    """The occurrence of ``window`` open at ``now`` (timezone-aware), or None when it is closed."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if window.start is not None and window.end is not None:
        if window.start <= now < window.end:
            return OpenWindow(window, window.start, window.end)
        return None
    assert window.schedule is not None and window.duration is not None  # guaranteed by the model
    # Only the latest start matters: with a fixed duration, that occurrence ends last.
    started = latest_start(window.schedule, ZoneInfo(window.time_zone), now)
    ends = started + parse_duration(window.duration)  # elapsed time, whatever the clocks do meanwhile
    return OpenWindow(window, started, ends) if now < ends else None


def latest_start(schedule: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The last instant at or before ``now`` at which a window with this cron ``schedule`` in ``zone`` opened.

    croniter reads wall-clock times without knowing that a fall-back shows an hour twice, so it is asked
    for wall times only (naive), each turned into the instants it names by :func:`starts_at`. Wall-clock
    order and time order differ only within a day-light saving change of a transition, so the search
    starts that much after ``now`` and goes on until no earlier wall time can name a later instant.
    """
    walls = croniter(schedule, _wall(now, zone) + _shift(zone, now) + timedelta(microseconds=1))
    latest: tuple[datetime, datetime, timedelta] | None = None  # start, its wall time, the shift there
    while True:
        wall = walls.get_prev(datetime)
        if latest is not None and wall < latest[1] - latest[2]:
            return latest[0]
        for start in starts_at(wall, zone):
            if start <= now and (latest is None or start > latest[0]):
                latest = (start, wall, _shift(zone, start))
        if latest is not None and not latest[2]:
            return latest[0]  # clocks steady around it: every earlier wall time names an earlier instant


def starts_at(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The instants (UTC) a window scheduled at the naive wall-clock time ``wall`` in ``zone`` opens.

    One, except around daylight-saving changes: in the hour a fall-back repeats, the clocks show ``wall``
    twice and the window opens both times; in the hour a spring-forward skips, they never show it and the
    window opens as they jump past it (as cron runs jobs scheduled there), rather than not at all.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first < second:
        return [first, second]
    if first == second:
        return [first]
    # Skipped: read with the offset after the jump, it lies before it; with the one before, after it.
    before, after = int(second.timestamp()), int(first.timestamp())
    old_offset = second.astimezone(zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(zone).utcoffset() == old_offset:
            before = middle
        else:
            after = middle
    return [datetime.fromtimestamp(after, UTC)]


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _shift(zone: ZoneInfo, instant: datetime) -> timedelta:
    """How far the zone's UTC offset moves within a day of ``instant``: zero away from clock changes."""
    offsets = [(instant + timedelta(days=days)).astimezone(zone).utcoffset() or timedelta()
               for days in (-1, 0, 1)]
    return max(offsets) - min(offsets)


def open_windows(windows: Iterable[FreezeWindow], now: datetime) -> list[OpenWindow]:
    """Every window open at ``now``, in the order given."""
    found = (open_occurrence(w, now) for w in windows)
    return [w for w in found if w is not None]


def freezing(windows: Iterable[FreezeWindow], tier: RiskTier, now: datetime) -> OpenWindow | None:
    """The open window that freezes ``tier`` at ``now`` and ends last, or None when the tier may change."""
    candidates = [w for w in open_windows(windows, now) if tier in w.window.tiers]
    return max(candidates, key=lambda w: w.ends_at, default=None)


def readable_refusals(listed: object) -> list[FreezeRefusal]:
    """The refusals a policy's status lists, without the entries that are not one (hand-edited, or from
    another version of Ballast): a bad entry costs only itself, never the status of the policy."""
    readable = []
    for entry in listed if isinstance(listed, list) else []:
        try:
            readable.append(FreezeRefusal.model_validate(entry))
        except ValidationError:
            continue
    return readable


def record_refusals(kept: Iterable[FreezeRefusal], new: Iterable[FreezeRefusal], now: datetime) -> list[FreezeRefusal]:
    """The refusals to keep in a policy status: one per change and window (retries count once, at the
    first refusal), none older than REFUSALS_KEPT_FOR, the newest MAX_REFUSALS, oldest first."""
    first: dict[tuple[str, str, str, str, str], FreezeRefusal] = {}
    for refusal in sorted([*kept, *new], key=lambda r: r.at):
        first.setdefault((refusal.namespace, refusal.kind, refusal.name, refusal.revision, refusal.window), refusal)
    recent = [r for r in first.values() if now - r.at <= REFUSALS_KEPT_FOR]
    return recent[-MAX_REFUSALS:]
