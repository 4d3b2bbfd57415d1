"""A Release's Kubernetes-style conditions, derived from its phase, so tools that know conditions (``kubectl
wait --for=condition=Succeeded``, dashboards, GitOps health checks) read a release without knowing Ballast.

- ``Progressing``: True while the release moves traffic (Progressing, Promoting, RollingBack).
- ``Degraded``: True once the change is being or has been undone, or the release failed.
- ``Succeeded``: present only once the release is over: True when promoted, False otherwise.

Reason and message are the phase's own, so a condition never says something the status does not.
"""

from __future__ import annotations

import re
from datetime import datetime

from ballast.api.conditions import Observation, merge_conditions
from ballast.api.release import ACTIVE_PHASES, FINAL_PHASES, ReleasePhase, ReleaseStatus

DEGRADED_PHASES = frozenset({ReleasePhase.ROLLING_BACK, ReleasePhase.ROLLED_BACK, ReleasePhase.FAILED})
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def release_conditions(status: ReleaseStatus) -> list[Observation]:
    """The conditions that hold for a release in this status."""
    phase = status.phase
    reason = status.reason if _REASON.fullmatch(status.reason) else phase.value
    message = status.message or f"The release is {phase.value}."
    observed = [
        Observation("Progressing", phase in ACTIVE_PHASES, reason, message),
        Observation("Degraded", phase in DEGRADED_PHASES, reason, message),
    ]
    if phase in FINAL_PHASES:
        observed.append(Observation("Succeeded", phase is ReleasePhase.PROMOTED, reason, message))
    return observed


def with_conditions(status: ReleaseStatus, now: datetime, generation: int | None) -> ReleaseStatus:
    """``status`` with its conditions brought up to date; a condition's lastTransitionTime moves only when it
    flips."""
    merged, _ = merge_conditions(status.conditions, release_conditions(status), now, generation)
    return status.model_copy(update={"conditions": merged})
