"""With replica split, the weight a step reaches, and the warning when it cannot come within 5 points."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ballast.api.common import RiskTier
from ballast.api.release import ReleasePhase, ReleaseStatus
from ballast.api.releasepolicy import TIER_DEFAULTS, TierSettings
from ballast.release.machine import (
    WEIGHT_TOLERANCE,
    CanaryView,
    DeploymentView,
    View,
    canary_replicas,
    plan,
    reached_weight,
    replicas_for,
    weight_warning,
)

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def started(replicas: int, steps: list[int]) -> ReleaseStatus:
    tier = TierSettings(steps=steps)
    return plan(View(now=T0, status=ReleaseStatus(), steps=steps, to_revision="n", from_revision="o", tier=tier,
                     deployment=DeploymentView("n", True, replicas, True, False), canary=None)).status


@pytest.mark.parametrize(("stable", "canary", "reached"), [(3, 1, 25), (4, 1, 20), (99, 1, 1), (1, 1, 50), (0, 1, 100)])
def test_reached_weight_is_the_canarys_share_of_the_pods(stable, canary, reached):
    assert reached_weight(stable, canary) == reached


@pytest.mark.parametrize("weight", range(1, 101))
def test_the_warning_says_exactly_when_the_split_misses_by_more_than_the_tolerance(weight):
    for stable in range(0, 60):
        reached = reached_weight(stable, canary_replicas(stable, weight))
        warning = weight_warning(stable, weight)
        assert bool(warning) == (abs(reached - weight) > WEIGHT_TOLERANCE), (stable, weight)
        if warning:
            assert f"The canary gets {reached}% of the traffic, not the {weight}% requested" in warning
            needed = replicas_for(weight)
            if needed is None:
                assert weight == 100 and "leave 100% out of the tier's steps" in warning
                continue
            assert f"at least {needed} replicas" in warning
            # The replicas it suggests do reach the weight, and no fewer would.
            assert abs(reached_weight(needed, canary_replicas(needed, weight)) - weight) <= WEIGHT_TOLERANCE
            assert all(weight_warning(fewer, weight) for fewer in range(1, needed))


def test_the_critical_tiers_first_step_on_four_replicas_warns_and_records_what_it_reached():
    steps = TIER_DEFAULTS[RiskTier.CRITICAL].steps
    status = started(4, steps)
    assert (status.phase, status.reason, status.weight, status.reached_weight) == (
        ReleasePhase.PROGRESSING, "WeightNotReached", 1, 20)
    assert status.weight_warning == (
        "The canary gets 20% of the traffic, not the 1% requested: with 4 stable replica(s) the replica split "
        "(1 canary pod(s)) cannot come within 5 points; scale the Deployment to at least 15 replicas, or change "
        "the tier's steps.")
    assert status.message.endswith(status.weight_warning)


def test_a_reachable_step_records_its_weight_without_a_warning():
    status = started(3, [25, 50])
    assert (status.reason, status.reached_weight, status.weight_warning) == ("StepStarted", 25, "")


def test_scaling_the_deployment_mid_step_updates_what_is_reached():
    status = started(3, [25, 50])
    tier = TierSettings(steps=[25, 50])
    scaled = plan(View(now=T0, status=status, steps=[25, 50], to_revision="n", from_revision="o", tier=tier,
                       deployment=DeploymentView("n", True, 5, True, False), canary=CanaryView(1, 1))).status
    assert (scaled.reached_weight, scaled.weight_warning) == (29, "")  # 2 canary pods beside 5
    shrunk = plan(View(now=T0, status=status, steps=[25, 50], to_revision="n", from_revision="o", tier=tier,
                       deployment=DeploymentView("n", True, 1, True, False), canary=CanaryView(1, 1))).status
    assert shrunk.reached_weight == 50 and shrunk.weight_warning.startswith("The canary gets 50% of the traffic")
