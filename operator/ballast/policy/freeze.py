"""Freeze windows: is a tier frozen at a given instant, and until when?

Recurring windows open at each cron occurrence, read in the window's IANA time zone (so "Friday 18:00
in Europe/Berlin" follows daylight saving time), and stay open for ``duration`` of elapsed time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

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
    length = parse_duration(window.duration)
    local_now = now.astimezone(ZoneInfo(window.time_zone))
    # croniter's get_prev is strictly before its base; nudge the base so an occurrence at exactly
    # `now` counts as open. Only the latest occurrence matters: with a fixed duration, it ends last.
    latest = croniter(window.schedule, local_now + timedelta(microseconds=1)).get_prev(datetime)
    started = latest.astimezone(UTC)
    ends = started + length  # elapsed time, so a window spanning a DST change lasts exactly `duration`
    return OpenWindow(window, started, ends) if now < ends else None


def open_windows(windows: Iterable[FreezeWindow], now: datetime) -> list[OpenWindow]:
    """Every window open at ``now``, in the order given."""
    found = (open_occurrence(w, now) for w in windows)
    return [w for w in found if w is not None]


def freezing(windows: Iterable[FreezeWindow], tier: RiskTier, now: datetime) -> OpenWindow | None:
    """The open window that freezes ``tier`` at ``now`` and ends last, or None when the tier may change."""
    candidates = [w for w in open_windows(windows, now) if tier in w.window.tiers]
    return max(candidates, key=lambda w: w.ends_at, default=None)


def record_refusals(kept: Iterable[FreezeRefusal], new: Iterable[FreezeRefusal], now: datetime) -> list[FreezeRefusal]:
    """The refusals to keep in a policy status: one per change and window (retries count once, at the
    first refusal), none older than REFUSALS_KEPT_FOR, the newest MAX_REFUSALS, oldest first."""
    first: dict[tuple[str, str, str, str, str], FreezeRefusal] = {}
    for refusal in sorted([*kept, *new], key=lambda r: r.at):
        first.setdefault((refusal.namespace, refusal.kind, refusal.name, refusal.revision, refusal.window), refusal)
    recent = [r for r in first.values() if now - r.at <= REFUSALS_KEPT_FOR]
    return recent[-MAX_REFUSALS:]
