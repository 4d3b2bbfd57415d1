"""Gates that make a release wait: the concurrency limit per namespace and per owning team.

Releases queue in creation order: a waiting release may start only when the releases holding slots
plus the waiting releases created before it leave room under the limit. Releases awaiting approval
hold no slot and are not counted ahead of anyone: an unanswered approval must not stall a team.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ballast.api.release import ReleasePhase
from ballast.release.machine import ACTIVE_PHASES

QUEUED_PHASES = frozenset({ReleasePhase.PENDING, ReleasePhase.BLOCKED})


@dataclass(frozen=True)
class ReleaseRef:
    namespace: str
    name: str
    owner: str
    phase: ReleasePhase
    created: datetime


def concurrency_block(me: ReleaseRef, releases: Iterable[ReleaseRef], limit: int, tier: str) -> str | None:
    """Why ``me`` must wait, or None when it may start."""
    others = [r for r in releases if (r.namespace, r.name) != (me.namespace, me.name)]

    def occupied(scope: list[ReleaseRef]) -> int:
        active = sum(r.phase in ACTIVE_PHASES for r in scope)
        ahead = sum(r.phase in QUEUED_PHASES and (r.created, r.name) < (me.created, me.name) for r in scope)
        return active + ahead

    in_namespace = occupied([r for r in others if r.namespace == me.namespace])
    if in_namespace >= limit:
        return (f"{in_namespace} release(s) are progressing or queued ahead in namespace {me.namespace}; "
                f"tier {tier} allows {limit} at once. It starts when one finishes.")
    if me.owner:
        of_team = occupied([r for r in others if r.owner == me.owner])
        if of_team >= limit:
            return (f"{of_team} release(s) of team {me.owner} are progressing or queued ahead; tier {tier} allows "
                    f"{limit} at once. It starts when one finishes.")
    return None


def budget_block(service: str, remaining: float | None, window: str, change_type: str, emergency: str | None,
                 exempt_change_types: list[str]) -> str | None:
    """Why a release of a service whose error budget is spent must wait, or None.

    Only changes that restore reliability (by default fix, reliability, security) proceed, or any
    change with a break-glass reason. An unknown budget (no SLO, no data) never blocks.
    """
    if remaining is None or remaining > 0 or change_type in exempt_change_types or emergency:
        return None
    return (f"The error budget of service {service} is spent ({remaining:.0%} left over {window}): only "
            f"{', '.join(exempt_change_types)} changes proceed. Set ballast.dev/change-type accordingly, or "
            "break glass with ballast.dev/emergency.")
