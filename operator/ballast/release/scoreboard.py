"""The weekly scoreboard leaders read, computed from Release records alone.

Per owning team and risk tier, over a period: deployment frequency (promoted releases per week), lead
time (change recorded, moments after admission, to promoted), change failure rate, mean time to
restore, the releases gates held back (concurrency limit, spent error budget), break-glass use, and
the share of changes spent on stability (fix, reliability, security) rather than new capability.

Changes refused outright by a freeze window never become Releases: the ReleasePolicy that refused them
lists them in its status (``freezeRefusals``, one per change and window), and they count as blocked by
freeze.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from ballast.api.release import Release, ReleasePhase
from ballast.api.releasepolicy import FreezeRefusal

STABILITY_CHANGES = frozenset({"fix", "reliability", "security"})


@dataclass(frozen=True)
class ScoredRelease:
    """The facts of one Release the scoreboard counts."""

    team: str
    tier: str
    phase: ReleasePhase
    created: datetime
    finished: datetime | None
    change_type: str
    emergency: bool
    blocked_by: tuple[str, ...]

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ScoredRelease:
        release = Release.model_validate(body)
        status = release.status
        return cls(
            team=release.spec.owner or "(no owner)",
            tier=release.spec.tier.value,
            phase=status.phase if status else ReleasePhase.PENDING,
            created=datetime.fromisoformat(body["metadata"]["creationTimestamp"]),
            finished=status.finished_at if status else None,
            change_type=release.spec.change_type,
            emergency=bool(release.spec.emergency),
            blocked_by=tuple(status.blocked_by) if status else (),
        )

    @property
    def took_seconds(self) -> float | None:
        return (self.finished - self.created).total_seconds() if self.finished else None


@dataclass(frozen=True)
class ScoreRow:
    team: str
    tier: str
    releases: int
    """Releases recorded in the period."""
    promoted: int
    rolled_back: int
    deployment_frequency_per_week: float
    lead_time_median_seconds: float | None
    change_failure_rate: float
    mean_time_to_restore_seconds: float | None
    blocked_by_freeze: int
    """Changes a freeze window refused in the period (they never became releases)."""
    blocked_by_wip: int
    blocked_by_budget: int
    break_glass: int
    stability_share: float
    """Share of the period's releases that were fix, reliability or security changes."""


def scoreboard(releases: Iterable[ScoredRelease], since: datetime, until: datetime,
               freeze_refusals: Iterable[FreezeRefusal] = ()) -> list[ScoreRow]:
    """One row per (team, tier), over the releases recorded and the changes frozen out in [since, until)."""
    weeks = max((until - since) / timedelta(weeks=1), 1e-9)
    groups: dict[tuple[str, str], list[ScoredRelease]] = {}
    for release in releases:
        if since <= release.created < until:
            groups.setdefault((release.team, release.tier), []).append(release)
    frozen: dict[tuple[str, str], int] = {}
    for refusal in freeze_refusals:
        if since <= refusal.at < until:
            key = (refusal.team or "(no owner)", refusal.tier.value)
            frozen[key] = frozen.get(key, 0) + 1
            groups.setdefault(key, [])
    rows = []
    for (team, tier), members in sorted(groups.items()):
        promoted = [r for r in members if r.phase is ReleasePhase.PROMOTED]
        rolled_back = [r for r in members if r.phase is ReleasePhase.ROLLED_BACK]
        lead = [t for t in (r.took_seconds for r in promoted) if t is not None]
        restore = [t for t in (r.took_seconds for r in rolled_back) if t is not None]
        finished = len(promoted) + len(rolled_back)
        stability = sum(r.change_type in STABILITY_CHANGES for r in members)
        rows.append(ScoreRow(
            team=team, tier=tier, releases=len(members), promoted=len(promoted), rolled_back=len(rolled_back),
            deployment_frequency_per_week=round(len(promoted) / weeks, 2),
            lead_time_median_seconds=round(median(lead), 1) if lead else None,
            change_failure_rate=round(len(rolled_back) / finished, 4) if finished else 0.0,
            mean_time_to_restore_seconds=round(sum(restore) / len(restore), 1) if restore else None,
            blocked_by_freeze=frozen.get((team, tier), 0),
            blocked_by_wip=sum("concurrency" in r.blocked_by for r in members),
            blocked_by_budget=sum("error-budget" in r.blocked_by for r in members),
            break_glass=sum(r.emergency for r in members),
            stability_share=round(stability / len(members), 4) if members else 0.0,
        ))
    return rows
