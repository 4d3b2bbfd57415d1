"""Delivery figures of a service from its kept Release records, and its error budget.

Change failure rate counts releases that reached production and had to be rolled back, over every
release that finished either way; superseded and failed releases changed nothing and do not count.
Mean time to restore runs from the change being recorded (moments after admission) to its rollback
completing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ballast.api.release import FINAL_PHASES, ReleasePhase
from ballast.api.serviceownership import ReleaseReference, ReleaseStatistics


@dataclass(frozen=True)
class ReleaseRecord:
    name: str
    phase: ReleasePhase
    created: datetime
    finished: datetime | None


@dataclass(frozen=True)
class ServiceHistory:
    current: ReleaseReference | None
    last: ReleaseReference | None
    statistics: ReleaseStatistics


def summarize(records: Iterable[ReleaseRecord]) -> ServiceHistory:
    ordered = sorted(records, key=lambda r: (r.created, r.name))
    running = [r for r in ordered if r.phase not in FINAL_PHASES]
    finished = [r for r in ordered if r.phase in FINAL_PHASES]
    promoted = [r for r in finished if r.phase is ReleasePhase.PROMOTED]
    rolled_back = [r for r in finished if r.phase is ReleasePhase.ROLLED_BACK]
    counted = len(promoted) + len(rolled_back)
    restore_times = [(r.finished - r.created).total_seconds() for r in rolled_back if r.finished]
    return ServiceHistory(
        current=ReleaseReference(name=running[-1].name, phase=running[-1].phase.value) if running else None,
        last=ReleaseReference(name=finished[-1].name, phase=finished[-1].phase.value) if finished else None,
        statistics=ReleaseStatistics(
            releases=counted,
            rollbacks=len(rolled_back),
            change_failure_rate=round(len(rolled_back) / counted, 4) if counted else 0.0,
            mean_time_to_restore_seconds=round(sum(restore_times) / len(restore_times), 1) if restore_times else None,
        ),
    )


def error_budget_remaining(requests: float | None, errors: float | None, availability: float) -> float | None:
    """Share of the error budget left: 1 when no errors, 0 when spent, negative when overspent."""
    if not requests or errors is None:
        return None
    allowed = 1.0 - availability
    return round(1.0 - (errors / requests) / allowed, 4)
