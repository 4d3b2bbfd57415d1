"""The scoreboard over Release records, and the plugin's output formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from ballast.api.common import RiskTier
from ballast.api.release import ReleasePhase
from ballast.api.releasepolicy import FreezeRefusal
from ballast.cli.releases import progress
from ballast.cli.render import emit, table
from ballast.release.scoreboard import ScoredRelease, scoreboard

T0 = datetime(2026, 11, 16, tzinfo=UTC)
WEEK = timedelta(weeks=1)


def scored(team="payments", tier="high", phase=ReleasePhase.PROMOTED, hour=1, took=600, change="feature",
           emergency=False, blocked=()):
    created = T0 + timedelta(hours=hour)
    return ScoredRelease(team, tier, phase, created, created + timedelta(seconds=took) if took else None,
                         change, emergency, tuple(blocked))


def test_rows_per_team_and_tier():
    rows = scoreboard([
        scored(hour=1, took=600), scored(hour=2, took=1200), scored(phase=ReleasePhase.ROLLED_BACK, hour=3, took=90,
                                                                    change="fix"),
        scored(tier="low", hour=4), scored(team="search", hour=5, emergency=True, blocked=["concurrency"]),
        scored(hour=24 * 8),  # outside the week
    ], T0, T0 + WEEK)
    by_key = {(r.team, r.tier): r for r in rows}
    payments = by_key[("payments", "high")]
    assert (payments.releases, payments.promoted, payments.rolled_back) == (3, 2, 1)
    assert payments.deployment_frequency_per_week == 2.0
    assert payments.lead_time_median_seconds == 900.0
    assert payments.change_failure_rate == pytest.approx(1 / 3, abs=1e-4)
    assert payments.mean_time_to_restore_seconds == 90.0
    assert payments.stability_share == pytest.approx(1 / 3, abs=1e-4)
    search = by_key[("search", "high")]
    assert (search.break_glass, search.blocked_by_wip, search.blocked_by_budget) == (1, 1, 0)
    assert len(rows) == 3


def test_changes_frozen_out_count_per_team_and_tier_even_without_releases():
    def frozen(team, tier, hour):
        return FreezeRefusal(at=T0 + timedelta(hours=hour), kind="Deployment", namespace="shop", name="x",
                             revision=f"r{hour}", team=team, tier=tier, window="weekend")

    rows = scoreboard([scored(hour=1)], T0, T0 + WEEK, [
        frozen("payments", RiskTier.HIGH, 2), frozen("payments", RiskTier.HIGH, 3),
        frozen("search", RiskTier.CRITICAL, 4), frozen("", RiskTier.MEDIUM, 5),
        frozen("payments", RiskTier.HIGH, 24 * 8),  # outside the week
    ])
    by_key = {(r.team, r.tier): r for r in rows}
    assert by_key[("payments", "high")].blocked_by_freeze == 2
    assert by_key[("payments", "high")].releases == 1
    search = by_key[("search", "critical")]
    assert (search.releases, search.blocked_by_freeze, search.stability_share) == (0, 1, 0.0)
    assert by_key[("(no owner)", "medium")].blocked_by_freeze == 1


def test_empty_period():
    assert scoreboard([scored(hour=-5)], T0, T0 + WEEK) == []


def test_table_aligns_and_colours_only_when_asked():
    rows = [{"name": "a", "phase": "Promoted"}, {"name": "longer", "phase": "RolledBack"}]
    plain = table(rows, ["name", "phase"], colour=False)
    assert plain.splitlines()[0] == "NAME     PHASE"
    assert "\x1b[" not in plain
    assert "\x1b[" in table(rows, ["name", "phase"], colour=True)


def test_json_and_csv(capsys):
    rows = [{"team": "payments", "rate": 0.25, "missing": None}]
    emit(rows, ["team", "rate", "missing"], "json", no_color=True)
    assert json.loads(capsys.readouterr().out) == [{"team": "payments", "rate": 0.25, "missing": None}]
    emit(rows, ["team", "rate", "missing"], "csv", no_color=True)
    assert capsys.readouterr().out == "team,rate,missing\npayments,0.25,\n"


def test_progress_lines_say_phase_step_and_the_latest_verdict():
    assert progress({}) == "Pending"
    assert progress({"phase": "AwaitingApproval", "message": "The tier requires approval."}) == \
        "AwaitingApproval  The tier requires approval."
    starting = {"phase": "Progressing", "step": 0, "weight": 25, "message": "Step 1 of 2: canary at 25%."}
    assert progress(starting) == "Progressing  step 1 at 25%  Step 1 of 2: canary at 25%."
    running = {"phase": "Progressing", "step": 1, "weight": 50, "message": "Step 2 of 2.",
               "analyses": [{"verdict": "Pass", "message": "Canary 0.40% vs baseline 0.50%."}]}
    assert progress(running) == "Progressing  step 2 at 50%  Pass: Canary 0.40% vs baseline 0.50%."
    done = {**running, "phase": "RolledBack", "weight": 0, "message": "Restored revision abc."}
    assert progress(done) == "RolledBack  step 2 at 0%  Restored revision abc."
