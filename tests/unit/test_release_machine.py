"""The release state machine and the verdict function, as pure functions."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ballast.api.common import RiskTier, parse_duration
from ballast.api.release import MAX_ANALYSES_KEPT, ReleasePhase, ReleaseStatus, Verdict
from ballast.api.releasepolicy import TIER_DEFAULTS, InconclusiveAction, TierSettings
from ballast.release.gates import (
    Block,
    BlockKind,
    ErrorBudget,
    GateInputs,
    ReleaseRef,
    budget_block,
    concurrency_block,
    waiting_block,
)
from ballast.release.machine import (
    ActionKind,
    Analysis,
    CanaryView,
    DeploymentView,
    Gates,
    Requests,
    View,
    canary_replicas,
    plan,
)
from ballast.release.statistics import ReleaseRecord, error_budget_remaining, summarize
from ballast.release.verdict import Z_EARLY, Judgement, Sample, judge, wilson_interval

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TIER = TierSettings(steps=[10, 50], step_duration="10s", ready_deadline="30s", min_requests=50,
                    failure_limit=1, inconclusive_limit=2, on_inconclusive=InconclusiveAction.ROLLBACK)
NEW, OLD = "new-rev", "old-rev"
PAUSED = DeploymentView(revision=NEW, paused=True, replicas=9, pending=True, rolled_out=False)


def view(status: ReleaseStatus, *, now=T0, deployment=PAUSED, canary=None, tier=TIER, **kw) -> View:
    return View(now=now, status=status, steps=tier.steps, to_revision=NEW, from_revision=OLD, tier=tier,
                deployment=deployment, canary=canary, **kw)


def progressing(step=0, weight=10, started=T0, ready_at=None, analyses=()) -> ReleaseStatus:
    """A running step as the machine leaves it: not ready since the step began until the canary is ready."""
    return ReleaseStatus(phase=ReleasePhase.PROGRESSING, step=step, weight=weight, step_started_at=started,
                         canary_ready_at=ready_at, not_ready_since=None if ready_at else started,
                         analyses=list(analyses), started_at=T0)


def looked(verdict: Verdict, start=T0, end=T0 + timedelta(seconds=20)) -> Analysis:
    samples = {
        Verdict.PASS: (Sample(100, 0), Sample(900, 4), "fine"),
        Verdict.FAIL: (Sample(100, 20), Sample(900, 4), "too many errors"),
        Verdict.INCONCLUSIVE: (Sample(10, 0), Sample(900, 4), "too few requests"),
        Verdict.ERROR: (Sample(None, None), Sample(None, None), "Prometheus did not answer"),
    }
    canary, baseline, message = samples[verdict]
    return Analysis(start, end, canary, baseline, Judgement(verdict, message))


GOOD, BAD, UNSURE, BROKEN = (looked(v) for v in (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.ERROR))
EARLY_GOOD, EARLY_BAD, EARLY_UNSURE = (looked(v, end=T0 + timedelta(seconds=2))
                                       for v in (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE))


class TestCanarySizing:
    @pytest.mark.parametrize(("stable", "weight", "expected"), [
        (9, 10, 1), (20, 5, 1), (19, 5, 1), (3, 50, 3), (10, 25, 3), (4, 1, 1), (0, 10, 1), (5, 100, 5),
    ])
    def test_replicas(self, stable, weight, expected):
        assert canary_replicas(stable, weight) == expected


class TestWaiting:
    def test_starts_the_first_step(self):
        result = plan(view(ReleaseStatus()))
        assert result.status.phase is ReleasePhase.PROGRESSING
        assert (result.status.step, result.status.weight, result.status.step_started_at) == (0, 10, T0)
        assert [(a.kind, a.replicas) for a in result.actions] == [(ActionKind.ENSURE_CANARY, 1)]
        assert result.status.started_at == T0

    def test_blocked_names_the_reason_and_waits(self):
        block = Block(BlockKind.CONCURRENCY, "2 releases progress in shop (limit 2)")
        result = plan(view(ReleaseStatus(), gates=Gates(block=block)))
        assert result.status.phase is ReleasePhase.BLOCKED and result.actions == []
        assert result.status.blocked_by == ["concurrency"]
        assert result.status.message == "2 releases progress in shop (limit 2)"
        assert plan(view(result.status, gates=Gates(block=block))).transitioned is False

    def test_approval_gate(self):
        waiting = plan(view(ReleaseStatus(), gates=Gates(approval_required=True))).status
        assert waiting.phase is ReleasePhase.AWAITING_APPROVAL
        approved = plan(view(waiting, gates=Gates(approval_required=True, approved=True)))
        assert approved.status.phase is ReleasePhase.PROGRESSING


class TestProgressing:
    def test_recreates_a_missing_canary(self):
        result = plan(view(progressing()))
        assert [a.kind for a in result.actions] == [ActionKind.ENSURE_CANARY]
        assert result.status.phase is ReleasePhase.PROGRESSING

    def test_canary_not_ready_in_time_rolls_back(self):
        result = plan(view(progressing(), now=T0 + timedelta(seconds=31), canary=CanaryView(1, 0)))
        assert result.status.phase is ReleasePhase.ROLLING_BACK
        assert result.status.reason == "CanaryNotReady"
        assert [a.kind for a in result.actions] == [ActionKind.DELETE_CANARY, ActionKind.RESTORE]

    def test_ready_canary_opens_the_window_then_asks_for_analysis(self):
        ready = plan(view(progressing(), now=T0 + timedelta(seconds=3), canary=CanaryView(1, 1)))
        assert ready.status.canary_ready_at == T0 + timedelta(seconds=3)
        early = plan(view(ready.status, now=T0 + timedelta(seconds=8), canary=CanaryView(1, 1)))
        assert early.early and early.analyze_window == (T0 + timedelta(seconds=3), T0 + timedelta(seconds=8))
        assert early.requeue_after == pytest.approx(1)
        due = plan(view(ready.status, now=T0 + timedelta(seconds=13), canary=CanaryView(1, 1)))
        assert due.analyze_window == (T0 + timedelta(seconds=3), T0 + timedelta(seconds=13))
        assert not due.early

    def test_a_clear_failure_while_the_step_runs_rolls_back_at_once(self):
        running = progressing(ready_at=T0)
        result = plan(view(running, now=T0 + timedelta(seconds=2), canary=CanaryView(1, 1), analysis=EARLY_BAD))
        assert result.status.phase is ReleasePhase.ROLLING_BACK
        assert [a.verdict for a in result.status.analyses] == [Verdict.FAIL]

    @pytest.mark.parametrize("analysis", [EARLY_GOOD, EARLY_UNSURE,
                                          looked(Verdict.ERROR, end=T0 + timedelta(seconds=2))])
    def test_anything_but_a_failure_while_the_step_runs_changes_nothing(self, analysis):
        running = progressing(ready_at=T0)
        result = plan(view(running, now=T0 + timedelta(seconds=2), canary=CanaryView(1, 1), analysis=analysis))
        assert result.status == running and result.actions == []

    def test_pass_moves_to_the_next_step(self):
        now = T0 + timedelta(seconds=20)
        result = plan(view(progressing(ready_at=T0), now=now, canary=CanaryView(1, 1), analysis=GOOD))
        assert (result.status.step, result.status.weight) == (1, 50)
        assert result.status.analyses[0].verdict is Verdict.PASS
        assert result.status.analyses[0].canary.requests == 100
        assert [(a.kind, a.replicas) for a in result.actions] == [(ActionKind.ENSURE_CANARY, 9)]

    def test_pass_at_the_last_step_promotes(self):
        result = plan(view(progressing(step=1, weight=50, ready_at=T0), now=T0 + timedelta(seconds=20),
                           canary=CanaryView(9, 9), analysis=GOOD))
        assert result.status.phase is ReleasePhase.PROMOTING
        assert [a.kind for a in result.actions] == [ActionKind.PROMOTE]

    def test_fail_rolls_back_and_records_the_verdict_first(self):
        result = plan(view(progressing(ready_at=T0), now=T0 + timedelta(seconds=20), canary=CanaryView(1, 1),
                           analysis=BAD))
        assert result.status.phase is ReleasePhase.ROLLING_BACK
        assert result.status.reason == "AnalysisFailed"
        assert [a.verdict for a in result.status.analyses] == [Verdict.FAIL]
        assert "too many errors" in result.status.message

    def test_fail_below_the_limit_repeats_the_step(self):
        tier = TIER.model_copy(update={"failure_limit": 2})
        result = plan(view(progressing(ready_at=T0), now=T0 + timedelta(seconds=20), canary=CanaryView(1, 1),
                           analysis=BAD, tier=tier))
        assert result.status.phase is ReleasePhase.PROGRESSING and result.status.step == 0
        assert result.status.canary_ready_at == T0 + timedelta(seconds=20)

    def test_inconclusive_never_promotes_and_rolls_back_past_the_limit(self):
        first = plan(view(progressing(ready_at=T0), now=T0 + timedelta(seconds=20), canary=CanaryView(1, 1),
                          analysis=UNSURE))
        assert first.status.phase is ReleasePhase.PROGRESSING and first.status.step == 0
        second = plan(view(first.status, now=T0 + timedelta(seconds=40), canary=CanaryView(1, 1),
                           analysis=looked(Verdict.INCONCLUSIVE, T0 + timedelta(seconds=20),
                                           T0 + timedelta(seconds=40))))
        assert second.status.phase is ReleasePhase.ROLLING_BACK
        assert second.status.reason == "AnalysisInconclusive"

    def test_inconclusive_hold(self):
        tier = TIER.model_copy(update={"on_inconclusive": InconclusiveAction.HOLD, "inconclusive_limit": 1})
        result = plan(view(progressing(step=1, weight=50, ready_at=T0), now=T0 + timedelta(seconds=20),
                           canary=CanaryView(9, 9), analysis=UNSURE, tier=tier))
        assert result.status.phase is ReleasePhase.PROGRESSING and result.status.reason == "Held"
        assert result.actions == []

    def test_promote_request_honours_the_tier(self):
        status = progressing()
        allowed = plan(view(status, canary=CanaryView(1, 1), requests=Requests(promote=True)))
        assert allowed.status.phase is ReleasePhase.PROMOTING
        strict = TIER.model_copy(update={"allow_skip": False})
        forbidden = plan(view(status, canary=CanaryView(1, 1), requests=Requests(promote=True), tier=strict))
        assert forbidden.status.phase is ReleasePhase.PROGRESSING

    def test_abort(self):
        result = plan(view(progressing(), canary=CanaryView(1, 1), requests=Requests(abort="bad config")))
        assert result.status.phase is ReleasePhase.ROLLING_BACK and result.status.reason == "Aborted"


class TestEnding:
    def test_superseded_by_another_change(self):
        changed = DeploymentView(revision="third", paused=True, replicas=9, pending=True, rolled_out=False)
        result = plan(view(progressing(), deployment=changed, canary=CanaryView(1, 1)))
        assert result.status.phase is ReleasePhase.SUPERSEDED
        assert [a.kind for a in result.actions] == [ActionKind.DELETE_CANARY]
        assert result.status.finished_at == T0

    def test_deployment_deleted(self):
        assert plan(view(progressing(), deployment=None)).status.phase is ReleasePhase.FAILED

    def test_promoting_waits_for_the_native_rollout(self):
        status = ReleaseStatus(phase=ReleasePhase.PROMOTING, step=1, weight=50)
        unpause = plan(view(status, canary=CanaryView(9, 9)))
        assert [a.kind for a in unpause.actions] == [ActionKind.PROMOTE]
        rolling = DeploymentView(revision=NEW, paused=False, replicas=9, pending=False, rolled_out=False)
        assert plan(view(status, deployment=rolling, canary=CanaryView(9, 9))).actions == []
        done = DeploymentView(revision=NEW, paused=False, replicas=9, pending=False, rolled_out=True)
        result = plan(view(status, deployment=done, canary=CanaryView(9, 9)))
        assert result.status.phase is ReleasePhase.PROMOTED
        assert [a.kind for a in result.actions] == [ActionKind.DELETE_CANARY]

    def test_rolling_back_until_the_stable_template_is_back(self):
        status = ReleaseStatus(phase=ReleasePhase.ROLLING_BACK, step=0, weight=10, reason="AnalysisFailed",
                               message="Analysis failed.")
        again = plan(view(status, canary=CanaryView(1, 1)))
        assert [a.kind for a in again.actions] == [ActionKind.DELETE_CANARY, ActionKind.RESTORE]
        restored = DeploymentView(revision=OLD, paused=False, replicas=9, pending=False, rolled_out=False)
        done = plan(view(status, deployment=restored))
        assert done.status.phase is ReleasePhase.ROLLED_BACK and done.status.weight == 0
        assert done.status.reason == "AnalysisFailed"

    def test_final_phases_do_nothing(self):
        status = ReleaseStatus(phase=ReleasePhase.PROMOTED)
        result = plan(view(status, deployment=None))
        assert result.status is status and result.actions == []


class TestVerdict:
    MEDIUM = TIER_DEFAULTS[RiskTier.MEDIUM]

    def test_wilson_behaves_at_zero_and_small_n(self):
        low, high = wilson_interval(0, 10)
        assert low == 0 and 0.2 < high < 0.35
        assert wilson_interval(5, 0) == (0.0, 1.0)

    @pytest.mark.parametrize(("canary", "baseline", "expected"), [
        (Sample(None, None), Sample(1000, 5), Verdict.INCONCLUSIVE),       # no data
        (Sample(0, 0), Sample(1000, 5), Verdict.INCONCLUSIVE),             # no traffic
        (Sample(30, 0), Sample(1000, 5), Verdict.INCONCLUSIVE),            # below min requests
        (Sample(100, 20), Sample(1000, 5), Verdict.FAIL),                  # 20% >> 5% ceiling
        (Sample(100, 1), Sample(1000, 5), Verdict.PASS),                   # like baseline
        (Sample(100, 0), Sample(None, None), Verdict.PASS),                # no baseline: ceiling only
        (Sample(60, 4), Sample(1000, 5), Verdict.INCONCLUSIVE),            # looks worse, not confidently
        (Sample(2000, 90), Sample(20000, 100), Verdict.FAIL),              # 4.5% vs 0.5%: worse beyond +2%
        (Sample(100, 6), Sample(100, 6), Verdict.INCONCLUSIVE),            # above ceiling, not confidently
    ])
    def test_verdicts(self, canary, baseline, expected):
        assert judge(canary, baseline, self.MEDIUM).verdict is expected

    def test_early_checks_demand_stronger_evidence(self):
        # 9 errors in 100 against a 0.5% baseline: a failure at the end of a step, not yet while it runs.
        assert judge(Sample(100, 9), Sample(1000, 5), self.MEDIUM).verdict is Verdict.FAIL
        assert judge(Sample(100, 9), Sample(1000, 5), self.MEDIUM, Z_EARLY).verdict is Verdict.INCONCLUSIVE

    def test_good_canaries_do_not_flap(self):
        # 0.5% background errors: however the errors fall in 100-request windows, never a Fail.
        for errors in range(0, 6):
            assert judge(Sample(100, errors), Sample(1000, 5), self.MEDIUM).verdict is not Verdict.FAIL


class TestConcurrency:
    def ref(self, name, phase, minute, namespace="shop", owner="payments"):
        return ReleaseRef(namespace, name, owner, phase, T0 + timedelta(minutes=minute))

    def test_free_slot(self):
        me = self.ref("b", ReleasePhase.PENDING, 2)
        assert concurrency_block(me, [me, self.ref("a", ReleasePhase.PROMOTED, 1)], 1, "high") is None

    def test_active_release_blocks_and_names_the_namespace(self):
        me = self.ref("b", ReleasePhase.PENDING, 2)
        reason = concurrency_block(me, [self.ref("a", ReleasePhase.PROGRESSING, 1)], 1, "high")
        assert "namespace shop" in reason and "allows 1" in reason

    def test_queue_order(self):
        first, second = self.ref("a", ReleasePhase.BLOCKED, 1), self.ref("b", ReleasePhase.BLOCKED, 2)
        assert concurrency_block(first, [first, second], 1, "high") is None
        assert concurrency_block(second, [first, second], 1, "high") is not None

    def test_awaiting_approval_holds_no_slot(self):
        me = self.ref("b", ReleasePhase.PENDING, 2)
        assert concurrency_block(me, [self.ref("a", ReleasePhase.AWAITING_APPROVAL, 1)], 1, "high") is None

    def test_team_limit_across_namespaces(self):
        me = self.ref("b", ReleasePhase.PENDING, 2)
        other = self.ref("a", ReleasePhase.PROGRESSING, 1, namespace="cart")
        assert "team payments" in concurrency_block(me, [other], 1, "high")
        assert concurrency_block(me, [other], 2, "high") is None


class TestStatistics:
    def test_change_failure_rate_and_time_to_restore(self):
        def record(name, phase, minute, took=None):
            created = T0 + timedelta(minutes=minute)
            return ReleaseRecord(name, phase, created, created + timedelta(seconds=took) if took else None)

        history = summarize([
            record("a", ReleasePhase.PROMOTED, 1, 60), record("b", ReleasePhase.ROLLED_BACK, 2, 30),
            record("c", ReleasePhase.SUPERSEDED, 3, 5), record("d", ReleasePhase.ROLLED_BACK, 4, 90),
            record("e", ReleasePhase.PROGRESSING, 5),
        ])
        assert (history.statistics.releases, history.statistics.rollbacks) == (3, 2)
        assert history.statistics.change_failure_rate == pytest.approx(0.6667)
        assert history.statistics.mean_time_to_restore_seconds == 60.0
        assert (history.current.name, history.last.name) == ("e", "d")

    def test_empty(self):
        history = summarize([])
        assert history.current is None and history.last is None
        assert history.statistics.change_failure_rate == 0.0

    @pytest.mark.parametrize(("requests", "errors", "expected"), [
        (1000, 0, 1.0), (1000, 1, 0.0), (1000, 0.5, 0.5), (1000, 2, -1.0), (0, 0, None), (None, None, None),
    ])
    def test_error_budget(self, requests, errors, expected):
        assert error_budget_remaining(requests, errors, 0.999) == (pytest.approx(expected) if expected is not None
                                                                   else None)


class TestBudgetGate:
    @pytest.mark.parametrize(("remaining", "change_type", "emergency", "blocked"), [
        (0.5, "feature", None, False),
        (None, "feature", None, False),       # unknown budget never blocks
        (0.0, "feature", None, True),
        (-0.2, "config", None, True),
        (-0.2, "fix", None, False),
        (-0.2, "security", None, False),
        (-0.2, "feature", "INC-1", False),    # break-glass
    ])
    def test_budget(self, remaining, change_type, emergency, blocked):
        reason = budget_block("checkout", remaining, "30d", change_type, emergency,
                              ["fix", "reliability", "security"])
        assert (reason is not None) is blocked
        if blocked:
            assert "error budget of service checkout is spent" in reason and "ballast.dev/emergency" in reason


class TestUnknownData:
    """Error (the provider could not be asked) is not Inconclusive (too little traffic): its own limit and action."""

    def test_errors_past_the_limit_roll_back_by_default(self):
        tier = TIER.model_copy(update={"error_limit": 2})
        first = plan(view(progressing(ready_at=T0), now=T0 + timedelta(seconds=20), canary=CanaryView(1, 1),
                          analysis=BROKEN, tier=tier))
        assert first.status.phase is ReleasePhase.PROGRESSING and first.actions == []
        assert first.status.analysis_counts == {"Error": 1}
        second = plan(view(first.status, now=T0 + timedelta(seconds=40), canary=CanaryView(1, 1), tier=tier,
                           analysis=looked(Verdict.ERROR, T0 + timedelta(seconds=20), T0 + timedelta(seconds=40))))
        assert second.status.phase is ReleasePhase.ROLLING_BACK and second.status.reason == "AnalysisError"
        assert "could not be evaluated" in second.status.message

    def test_errors_hold_where_the_tier_says_so(self):
        tier = TIER.model_copy(update={"error_limit": 1, "on_error": InconclusiveAction.HOLD})
        result = plan(view(progressing(step=1, weight=50, ready_at=T0), now=T0 + timedelta(seconds=20),
                           canary=CanaryView(9, 9), analysis=BROKEN, tier=tier))
        assert result.status.phase is ReleasePhase.PROGRESSING and result.status.reason == "Held"
        assert result.actions == []

    def test_errors_do_not_count_towards_the_inconclusive_limit(self):
        tier = TIER.model_copy(update={"inconclusive_limit": 2, "error_limit": 5})
        status = progressing(ready_at=T0)
        for index, verdict in enumerate([Verdict.INCONCLUSIVE, Verdict.ERROR]):
            start = T0 + timedelta(seconds=20 * index)
            status = plan(view(status, now=start + timedelta(seconds=20), canary=CanaryView(1, 1), tier=tier,
                               analysis=looked(verdict, start, start + timedelta(seconds=20)))).status
            assert status.phase is ReleasePhase.PROGRESSING
        start = T0 + timedelta(seconds=40)
        last = plan(view(status, now=start + timedelta(seconds=20), canary=CanaryView(1, 1), tier=tier,
                         analysis=looked(Verdict.INCONCLUSIVE, start, start + timedelta(seconds=20))))
        assert last.status.reason == "AnalysisInconclusive"

    def test_an_analysis_of_an_older_window_is_not_used(self):
        stale = looked(Verdict.FAIL, start=T0 - timedelta(seconds=60), end=T0 - timedelta(seconds=40))
        result = plan(view(progressing(ready_at=T0), now=T0 + timedelta(seconds=20), canary=CanaryView(1, 1),
                           analysis=stale))
        assert result.status.phase is ReleasePhase.PROGRESSING
        assert result.analyze_window == (T0, T0 + timedelta(seconds=20)) and not result.early

    def test_analyses_are_bounded_and_counted(self):
        tier = TIER.model_copy(update={"inconclusive_limit": 30, "on_inconclusive": InconclusiveAction.HOLD})
        status = progressing(ready_at=T0)
        for index in range(100):
            start = status.canary_ready_at
            status = plan(view(status, now=start + timedelta(seconds=20), canary=CanaryView(1, 1), tier=tier,
                               analysis=looked(Verdict.INCONCLUSIVE, start, start + timedelta(seconds=20)))).status
            assert len(status.analyses) <= MAX_ANALYSES_KEPT, index
        assert status.analysis_counts == {"Inconclusive": 100}
        assert len(status.model_dump_json()) < 30_000


class TestImplausibleFigures:
    @pytest.mark.parametrize(("canary", "baseline"), [
        (Sample(100, math.nan), Sample(900, 4)),
        (Sample(math.nan, 0), Sample(900, 4)),
        (Sample(math.inf, 1), Sample(900, 4)),
        (Sample(100, -5), Sample(900, 4)),
        (Sample(-100, 0), Sample(900, 4)),
        (Sample(100, 150), Sample(900, 4)),
        (Sample(100, 0), Sample(900, math.nan)),
        (Sample(100, 0), Sample(-1, 0)),
    ])
    def test_are_an_error_never_a_pass(self, canary, baseline):
        judgement = judge(canary, baseline, TIER)
        assert judgement.verdict is Verdict.ERROR
        assert "unusable" in judgement.message

    @given(requests=st.floats(allow_nan=True, allow_infinity=True) | st.none(),
           errors=st.floats(allow_nan=True, allow_infinity=True) | st.none(),
           base_requests=st.floats(allow_nan=True, allow_infinity=True) | st.none(),
           base_errors=st.floats(allow_nan=True, allow_infinity=True) | st.none())
    def test_any_figures_give_a_verdict_and_pass_only_on_sound_ones(self, requests, errors, base_requests,
                                                                    base_errors):
        canary, baseline = Sample(requests, errors), Sample(base_requests, base_errors)
        judgement = judge(canary, baseline, TIER)
        if judgement.verdict is Verdict.PASS:
            assert canary.requests is not None and math.isfinite(canary.requests)
            assert canary.requests >= TIER.min_requests
            assert canary.errors is not None and 0 <= canary.errors <= canary.requests
            assert canary.errors / canary.requests <= TIER.max_error_rate


    def test_impossible_figures_are_recorded_without_them(self):
        analysis = Analysis(T0, T0 + timedelta(seconds=20), Sample(math.nan, 3), Sample(math.inf, -1),
                            judge(Sample(math.nan, 3), Sample(math.inf, -1), TIER))
        result = plan(view(progressing(ready_at=T0), now=T0 + timedelta(seconds=20), canary=CanaryView(1, 1),
                           analysis=analysis))
        (recorded,) = result.status.analyses
        assert recorded.verdict is Verdict.ERROR
        assert (recorded.canary.requests, recorded.canary.errors, recorded.canary.error_rate) == (None, 3, None)
        assert (recorded.baseline.requests, recorded.baseline.errors) == (None, -1)
        json.dumps(result.status.to_wire(), allow_nan=False)  # what the API server accepts


class TestReadiness:
    def test_time_not_ready_is_counted_not_the_step_age(self):
        """A canary ready for most of a long step, then briefly not ready (a pod restart), is not rolled back."""
        ready = plan(view(progressing(), now=T0 + timedelta(seconds=5), canary=CanaryView(1, 1))).status
        assert ready.not_ready_since is None and ready.not_ready_seconds == 5
        restart = plan(view(ready, now=T0 + timedelta(seconds=60), canary=CanaryView(1, 0)))
        assert restart.status.phase is ReleasePhase.PROGRESSING
        assert restart.status.not_ready_since == T0 + timedelta(seconds=60)
        later = plan(view(restart.status, now=T0 + timedelta(seconds=70), canary=CanaryView(1, 0)))
        assert later.status.phase is ReleasePhase.PROGRESSING
        gone = plan(view(restart.status, now=T0 + timedelta(seconds=86), canary=CanaryView(1, 0)))
        assert gone.status.phase is ReleasePhase.ROLLING_BACK and gone.status.reason == "CanaryNotReady"

    def test_a_new_step_starts_its_own_count(self):
        status = progressing(ready_at=T0).model_copy(update={"not_ready_seconds": 29.0})
        passed = plan(view(status, now=T0 + timedelta(seconds=20), canary=CanaryView(1, 1), analysis=GOOD)).status
        assert passed.step == 1 and passed.not_ready_seconds == 0


class TestPromotingCanStillBeStopped:
    PROMOTING = ReleaseStatus(phase=ReleasePhase.PROMOTING, step=1, weight=50, started_at=T0)
    ROLLING = DeploymentView(revision=NEW, paused=False, replicas=9, pending=False, rolled_out=False)

    def test_abort_during_the_native_rollout_rolls_back(self):
        result = plan(view(self.PROMOTING, deployment=self.ROLLING, requests=Requests(abort="pager")))
        assert result.status.phase is ReleasePhase.ROLLING_BACK and result.status.reason == "Aborted"
        assert ActionKind.RESTORE in [a.kind for a in result.actions]

    def test_a_stalled_rollout_rolls_back(self):
        stalled = replace(self.ROLLING, stalled=True)
        result = plan(view(self.PROMOTING, deployment=stalled))
        assert result.status.phase is ReleasePhase.ROLLING_BACK and result.status.reason == "RolloutStalled"


@st.composite
def verdict_runs(draw):
    return draw(st.lists(st.sampled_from(list(Verdict)), min_size=1, max_size=40))


class TestNeverPromotesWithoutPasses:
    @given(verdicts=verdict_runs(), tier_name=st.sampled_from(list(RiskTier)))
    @settings(max_examples=300, deadline=None)
    def test_promotion_needs_a_pass_at_every_step(self, verdicts, tier_name):
        tier = TIER_DEFAULTS[tier_name]
        step_seconds = parse_duration(tier.step_duration).total_seconds()
        now = T0
        status = plan(view(ReleaseStatus(), tier=tier, gates=Gates(approved=True))).status
        for verdict in verdicts:
            if status.phase is not ReleasePhase.PROGRESSING:
                break
            replicas = canary_replicas(PAUSED.replicas, status.weight)
            if status.canary_ready_at is None:
                now += timedelta(seconds=1)
                status = plan(view(status, now=now, tier=tier, canary=CanaryView(replicas, replicas))).status
            now = status.canary_ready_at + timedelta(seconds=step_seconds)
            status = plan(view(status, now=now, tier=tier, canary=CanaryView(replicas, replicas),
                               analysis=looked(verdict, status.canary_ready_at, now))).status
        if status.phase is ReleasePhase.PROMOTING:
            passed_steps = {a.step for a in status.analyses if a.verdict is Verdict.PASS}
            assert passed_steps == set(range(len(tier.steps)))
            assert status.analysis_counts.get("Fail", 0) < tier.failure_limit


class TestWaitingBlock:
    """Which gate holds a waiting release, in order; one awaiting approval holds no slot."""

    ME = ReleaseRef("shop", "me", "payments", ReleasePhase.PENDING, T0)
    BUSY = [ReleaseRef("shop", "other", "payments", ReleasePhase.PROGRESSING, T0 - timedelta(minutes=1))]
    SPENT = ErrorBudget("shop", -0.2, "30d", ["fix", "reliability", "security"])

    def inputs(self, **changes) -> GateInputs:
        return replace(GateInputs(me=self.ME, releases=[], limit=1, tier="high", approval_pending=False), **changes)

    def test_nothing_holds_a_free_release(self):
        assert waiting_block(self.inputs()) is None

    def test_the_canary_name_comes_first(self):
        block = waiting_block(self.inputs(canary_name_taken="taken", releases=self.BUSY, budget=self.SPENT))
        assert block == Block(BlockKind.CANARY_NAME, "taken")

    def test_then_the_concurrency_limit_then_the_budget(self):
        assert waiting_block(self.inputs(releases=self.BUSY, budget=self.SPENT)).kind is BlockKind.CONCURRENCY
        assert waiting_block(self.inputs(budget=self.SPENT)).kind is BlockKind.ERROR_BUDGET
        assert waiting_block(self.inputs(budget=self.SPENT, change_type="fix")) is None
        assert waiting_block(self.inputs(budget=self.SPENT, emergency="INC-1")) is None

    def test_awaiting_approval_waits_for_nothing_else(self):
        assert waiting_block(self.inputs(releases=self.BUSY, approval_pending=True)) is None
        awaiting = replace(self.ME, phase=ReleasePhase.AWAITING_APPROVAL)
        assert waiting_block(self.inputs(me=awaiting, releases=self.BUSY)) is None
        assert waiting_block(self.inputs(me=awaiting, canary_name_taken="taken")).kind is BlockKind.CANARY_NAME

    def test_a_started_release_is_never_held(self):
        running = replace(self.ME, phase=ReleasePhase.PROGRESSING)
        assert waiting_block(self.inputs(me=running, releases=self.BUSY, canary_name_taken="taken")) is None
