"""A Release's conditions follow from its status alone, and move their transition time only when they flip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ballast.api.common import ConditionStatus
from ballast.api.release import ReleasePhase, ReleaseStatus
from ballast.release.conditions import release_conditions, with_conditions

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)

# phase -> (Progressing, Degraded, Succeeded or None when absent)
EXPECTED = {
    ReleasePhase.PENDING: (False, False, None),
    ReleasePhase.BLOCKED: (False, False, None),
    ReleasePhase.AWAITING_APPROVAL: (False, False, None),
    ReleasePhase.PROGRESSING: (True, False, None),
    ReleasePhase.PROMOTING: (True, False, None),
    ReleasePhase.ROLLING_BACK: (True, True, None),
    ReleasePhase.PROMOTED: (False, False, True),
    ReleasePhase.ROLLED_BACK: (False, True, False),
    ReleasePhase.SUPERSEDED: (False, False, False),
    ReleasePhase.FAILED: (False, True, False),
}


def test_every_phase_is_covered():
    assert set(EXPECTED) == set(ReleasePhase)


@pytest.mark.parametrize("phase", list(ReleasePhase))
def test_conditions_of_each_phase(phase):
    observed = {o.type: o for o in release_conditions(ReleaseStatus(phase=phase, reason="SomeReason",
                                                                    message="Why it is so."))}
    progressing, degraded, succeeded = EXPECTED[phase]
    assert observed["Progressing"].status is progressing
    assert observed["Degraded"].status is degraded
    assert (observed["Succeeded"].status if "Succeeded" in observed else None) is succeeded
    assert all((o.reason, o.message) == ("SomeReason", "Why it is so.") for o in observed.values())


def test_a_missing_or_unusable_reason_falls_back_to_the_phase():
    for reason in ("", "not a reason!"):
        observed = release_conditions(ReleaseStatus(phase=ReleasePhase.ROLLING_BACK, reason=reason))
        assert {o.reason for o in observed} == {"RollingBack"}
        assert {o.message for o in observed} == {"The release is RollingBack."}


def test_transition_times_move_only_on_a_flip():
    progressing = with_conditions(ReleaseStatus(phase=ReleasePhase.PROGRESSING, reason="StepStarted"), T0, 3)
    times = {c.type: c.last_transition_time for c in progressing.conditions}
    assert times == {"Progressing": T0, "Degraded": T0}
    assert {c.observed_generation for c in progressing.conditions} == {3}

    later = T0 + timedelta(minutes=5)
    next_step = with_conditions(progressing.model_copy(update={"reason": "StepPassed"}), later, 3)
    assert {c.type: c.last_transition_time for c in next_step.conditions} == times  # nothing flipped
    assert {c.reason for c in next_step.conditions} == {"StepPassed"}

    rolled_back = with_conditions(next_step.model_copy(update={"phase": ReleasePhase.ROLLED_BACK,
                                                               "reason": "AnalysisFailed"}), later, 3)
    by_type = {c.type: c for c in rolled_back.conditions}
    assert {t: c.status for t, c in by_type.items()} == {
        "Progressing": ConditionStatus.FALSE, "Degraded": ConditionStatus.TRUE, "Succeeded": ConditionStatus.FALSE}
    assert {t: c.last_transition_time for t, c in by_type.items()} == {
        "Progressing": later, "Degraded": later, "Succeeded": later}


def test_unchanged_status_gives_equal_conditions():
    # Equal statuses are never written again: the conditions must not make every pass a write.
    status = with_conditions(ReleaseStatus(phase=ReleasePhase.BLOCKED, reason="Blocked", message="Wait."), T0, 1)
    assert with_conditions(status, T0 + timedelta(hours=1), 1) == status
