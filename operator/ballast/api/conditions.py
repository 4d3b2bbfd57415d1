"""Kubernetes-style conditions: merge a freshly computed condition into the existing list.

``lastTransitionTime`` only moves when the status flips, so SREs can read how long something has
been true; the caller learns which conditions changed so it can post an event for each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ballast.api.common import Condition, ConditionStatus


@dataclass(frozen=True)
class Observation:
    """A condition as just computed, before transition bookkeeping."""

    type: str
    status: bool
    reason: str
    message: str


def merge_conditions(
    existing: Iterable[Condition],
    observed: Iterable[Observation],
    now: datetime,
    generation: int | None,
) -> tuple[list[Condition], list[Condition]]:
    """Return (all conditions, the ones whose status, reason or message changed).

    Conditions not observed this time are kept untouched, in their original order.
    """
    by_type = {c.type: c for c in existing}
    changed: list[Condition] = []
    for obs in observed:
        status = ConditionStatus.TRUE if obs.status else ConditionStatus.FALSE
        before = by_type.get(obs.type)
        flipped = before is None or before.status != status
        condition = Condition(
            type=obs.type,
            status=status,
            reason=obs.reason,
            message=obs.message,
            last_transition_time=now if flipped or before is None else before.last_transition_time,
            observed_generation=generation,
        )
        if before is None or (before.status, before.reason, before.message) != (status, obs.reason, obs.message):
            changed.append(condition)
        by_type[obs.type] = condition
    return list(by_type.values()), changed
