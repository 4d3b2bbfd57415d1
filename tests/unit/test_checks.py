"""Latency and custom checks: their models, their verdicts and the analysis's overall verdict, as pure functions."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ballast.api.checks import Check, LatencyLimits
from ballast.api.common import RiskTier
from ballast.api.release import ReleasePhase, ReleaseStatus, Verdict
from ballast.api.releasepolicy import PrometheusQueries, ReleasePolicySpec, TierSettings
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.controllers.analysis import look
from ballast.metrics.provider import ProviderUnavailable
from ballast.release.checks import SEVERITY, CheckOutcome, LatencySample, judge_check, judge_latency, overall
from ballast.release.machine import Analysis, CanaryView, DeploymentView, View, plan
from ballast.release.verdict import Judgement, Sample

P99 = LatencyLimits(quantile=0.99, max_latency="500ms", max_increase="100ms", min_samples=100)
FAST = LatencySample(seconds=0.08, samples=1000)


class TestLatencyModel:
    def test_a_limit_is_required(self):
        with pytest.raises(ValidationError, match="sets neither maxLatency nor maxIncrease"):
            LatencyLimits(quantile=0.99)

    @pytest.mark.parametrize(("quantile", "needed"), [(0.5, 2), (0.9, 10), (0.95, 20), (0.99, 100), (0.999, 1000)])
    def test_min_samples_must_be_enough_to_estimate_the_quantile(self, quantile, needed):
        LatencyLimits(quantile=quantile, max_increase="50ms", min_samples=needed)
        with pytest.raises(ValidationError, match=f"raise it to at least {needed}"):
            LatencyLimits(quantile=quantile, max_increase="50ms", min_samples=needed - 1)

    def test_durations_are_seconds(self):
        assert (P99.max_latency_seconds, P99.max_increase_seconds) == (0.5, 0.1)

    def test_the_histogram_must_be_a_bucket_series(self):
        with pytest.raises(ValidationError, match="latencyHistogram"):
            PrometheusQueries.model_validate({"latencyHistogram": "http_request_duration_seconds"})

    def test_latency_templates_refuse_unknown_variables(self):
        with pytest.raises(ValidationError, match=r"query latency uses \$percentile: the templates know only"):
            PrometheusQueries.model_validate({"latency": "histogram_quantile($percentile, $histogram)"})


class TestCheckModel:
    def check(self, **fields):
        return Check.model_validate({"name": "queue-wait", "query": 'sum(x{pod=~"$pods"})', **fields})

    @pytest.mark.parametrize(("fields", "message"), [
        ({}, "sets no limit: set ceiling, floor or maxIncrease"),
        ({"ceiling": 1, "floor": 2}, "floor 2 is above ceiling 1"),
        ({"ceiling": 1, "query": "sum(x{pod=~\"$pod\"})"}, r"uses \$pod: the templates know only \$namespace"),
        ({"ceiling": 1, "query": "sum(x) > $"}, "write \\$\\$ for a literal dollar sign"),
        ({"maxIncrease": 1, "query": "sum(x)"}, "does not select pods with \\$pods"),
        ({"ceiling": 1, "name": "latency"}, "is the latency check's: pick another name"),
        ({"ceiling": 1, "name": "Queue"}, "name"),
        ({"maxIncrease": -1}, "maxIncrease"),
        ({"ceiling": math.inf}, "finite"),
    ])
    def test_malformed_checks_are_refused_with_the_fix(self, fields, message):
        with pytest.raises(ValidationError, match=message):
            self.check(**fields)

    def test_names_are_unique_in_a_tier_and_in_a_service(self):
        twice = [{"name": "a", "query": "sum(x)", "ceiling": 1}] * 2
        with pytest.raises(ValidationError, match="repeated: a"):
            TierSettings.model_validate({"checks": twice})
        with pytest.raises(ValidationError, match="repeated: a"):
            ServiceOwnershipSpec.model_validate({"selector": {}, "owner": "t", "runbook": "https://r.example",
                                                 "checks": twice})

    def test_a_policy_tier_keeps_its_defaults_beside_its_checks(self):
        spec = ReleasePolicySpec.model_validate({"tiers": {"critical": {
            "latency": {"maxIncrease": "100ms"}, "checks": [{"name": "a", "query": "sum(x)", "floor": 1}]}}})
        critical = spec.tiers.for_tier(RiskTier.CRITICAL)
        assert critical.steps == [1, 5, 25, 50] and critical.latency is not None
        assert [c.name for c in critical.checks] == ["a"]
        assert spec.tiers.for_tier(RiskTier.LOW).checks == [] and spec.tiers.for_tier(RiskTier.LOW).latency is None


class TestLatencyVerdict:
    def test_a_200ms_regression_fails_against_the_baseline(self):
        judgement = judge_latency(LatencySample(0.28, 400), FAST, P99)
        assert judgement.verdict is Verdict.FAIL
        assert "280 ms is more than the allowed 100 ms above the baseline's 80 ms" in judgement.message

    def test_the_ceiling_fails_even_without_a_baseline(self):
        judgement = judge_latency(LatencySample(0.6, 400), LatencySample(None, None), P99)
        assert judgement.verdict is Verdict.FAIL and "above the ceiling of 500 ms" in judgement.message

    def test_a_quantile_beyond_the_largest_bucket_is_slow_not_broken(self):
        judgement = judge_latency(LatencySample(math.inf, 400), FAST, P99)
        assert judgement.verdict is Verdict.FAIL and "above the histogram's largest bucket" in judgement.message

    def test_too_few_samples_are_inconclusive_however_slow(self):
        judgement = judge_latency(LatencySample(5.0, 99), FAST, P99)
        assert judgement.verdict is Verdict.INCONCLUSIVE and "fewer than the 100 a p99 needs" in judgement.message

    def test_no_traffic_is_inconclusive(self):
        assert judge_latency(LatencySample(None, None), FAST, P99).verdict is Verdict.INCONCLUSIVE
        assert judge_latency(LatencySample(math.nan, 0), FAST, P99).verdict is Verdict.INCONCLUSIVE

    @pytest.mark.parametrize("canary", [LatencySample(math.nan, 400), LatencySample(-0.1, 400),
                                        LatencySample(0.1, -5), LatencySample(0.1, math.inf),
                                        LatencySample(None, 400)])
    def test_unusable_figures_are_errors(self, canary):
        assert judge_latency(canary, FAST, P99).verdict is Verdict.ERROR

    def test_a_small_baseline_is_not_compared_with(self):
        judgement = judge_latency(LatencySample(0.3, 400), LatencySample(0.05, 10), P99)
        assert judgement.verdict is Verdict.PASS and "baseline too small to compare" in judgement.message

    @given(st.floats(0, 2), st.floats(0, 2), st.integers(0, 5000), st.integers(0, 5000))
    def test_verdict_follows_the_limits_exactly(self, canary_s, base_s, canary_n, base_n):
        judgement = judge_latency(LatencySample(canary_s, canary_n), LatencySample(base_s, base_n), P99)
        if canary_n < 100:
            expected = Verdict.INCONCLUSIVE
        elif canary_s > 0.5 or (base_n >= 100 and canary_s - base_s > 0.1):
            expected = Verdict.FAIL
        else:
            expected = Verdict.PASS
        assert judgement.verdict is expected, judgement.message


class TestCustomCheckVerdict:
    @pytest.mark.parametrize(("limits", "canary", "baseline", "expected"), [
        ({"ceiling": 10}, 10, None, Verdict.PASS),
        ({"ceiling": 10}, 10.5, None, Verdict.FAIL),
        ({"floor": 0.9}, 0.95, None, Verdict.PASS),
        ({"floor": 0.9}, 0.5, None, Verdict.FAIL),
        ({"maxIncrease": 2}, 5, 3, Verdict.PASS),
        ({"maxIncrease": 2}, 5.5, 3, Verdict.FAIL),
        ({"maxIncrease": 2}, 5, None, Verdict.ERROR),
        ({"maxIncrease": 2}, 5, math.nan, Verdict.ERROR),
        ({"ceiling": 10}, None, None, Verdict.ERROR),
        ({"ceiling": 10}, math.nan, None, Verdict.ERROR),
        ({"floor": 0}, math.inf, None, Verdict.ERROR),
        ({"ceiling": 10, "floor": 1, "maxIncrease": 1}, 0.5, 0, Verdict.FAIL),
    ])
    def test_each_limit(self, limits, canary, baseline, expected):
        check = Check.model_validate({"name": "c", "query": 'sum(x{pod=~"$pods"})', **limits})
        judgement = judge_check(check, canary, baseline)
        assert judgement.verdict is expected, judgement.message
        assert judgement.message.startswith("Check c")

    def test_no_data_is_never_a_pass(self):
        check = Check(name="c", query="sum(x)", floor=0)
        assert "cannot be evaluated is no pass" in judge_check(check, None, None).message


def outcome(verdict: Verdict, name: str = "c") -> CheckOutcome:
    return CheckOutcome(name, "policy", 1.0, None, None, Judgement(verdict, f"{name} says {verdict.value}"))


class TestOverallVerdict:
    @pytest.mark.parametrize(("rate", "checks"), list(product(SEVERITY, product([None, *SEVERITY], repeat=2))))
    def test_the_most_severe_part_decides(self, rate, checks):
        outcomes = [outcome(v, f"c{i}") for i, v in enumerate(checks) if v is not None]
        result = overall(Judgement(rate, "rate"), outcomes)
        worst = max([rate, *(o.judgement.verdict for o in outcomes)], key=SEVERITY.index)
        assert result.verdict is worst
        if rate is worst:
            assert result.message.startswith("rate")
        else:
            assert result.message == next(o.judgement.message for o in outcomes if o.judgement.verdict is worst)

    def test_a_pass_names_its_checks(self):
        result = overall(Judgement(Verdict.PASS, "Rate fine."), [outcome(Verdict.PASS, "latency")])
        assert result == Judgement(Verdict.PASS, "Rate fine. Checks passed: latency.")


class Answers:
    """A metric provider answering each query from a table of substrings, or failing where told."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def query(self, promql):
        self.asked.append(promql)
        for fragment, value in self.answers.items():
            if fragment in promql:
                if isinstance(value, Exception):
                    raise value
                return value
        return None

    def alert_rule_names(self):
        return frozenset()


T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
WINDOW = (T0, T0 + timedelta(seconds=60))
TIER = TierSettings(min_requests=10, latency=P99,
                    checks=[Check(name="retries", query='sum(retries{pod=~"$pods"})', max_increase=1)])


class TestLook:
    def answers(self, canary_latency=0.09, retries_error=None):
        return Answers({
            'pod=~"canary",le="+Inf"': 300, 'pod=~"stable",le="+Inf"': 900,
            'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="ns",'
            'pod=~"canary"}': canary_latency,
            'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="ns",'
            'pod=~"stable"}': 0.09,
            'code=~"5..': 0, 'retries{pod=~"canary"}': retries_error or 2, 'retries{pod=~"stable"}': 1,
            "http_requests_total": 300,
        })

    def test_a_slow_canary_fails_the_analysis_and_every_check_is_recorded(self):
        provider = self.answers(canary_latency=0.29)
        analysis = look(provider, PrometheusQueries(), "ns", "canary", "stable", WINDOW, TIER, early=False,
                        service_checks=[Check(name="own", query="sum(own_metric)", ceiling=5)])
        assert analysis.judgement.verdict is Verdict.FAIL and "p99 latency 290 ms" in analysis.judgement.message
        assert [(c.name, c.source, c.judgement.verdict) for c in analysis.checks] == [
            ("latency", "policy", Verdict.FAIL), ("retries", "policy", Verdict.PASS),
            ("own", "service", Verdict.ERROR)]  # own_metric has no data: an Error, not a pass
        assert analysis.checks[0].canary == 0.29 and analysis.checks[0].samples == 300

    def test_a_check_the_provider_cannot_answer_is_an_error_of_that_check(self):
        provider = self.answers(retries_error=ProviderUnavailable("timed out"))
        analysis = look(provider, PrometheusQueries(), "ns", "canary", "stable", WINDOW, TIER, early=False)
        assert analysis.judgement.verdict is Verdict.ERROR
        assert analysis.judgement.message == "Check retries could not be evaluated: timed out"
        assert analysis.checks[0].judgement.verdict is Verdict.PASS

    def test_early_looks_judge_the_error_rate_only(self):
        provider = self.answers(canary_latency=5.0)
        analysis = look(provider, PrometheusQueries(), "ns", "canary", "stable", WINDOW, TIER, early=True)
        assert analysis.checks == () and analysis.judgement.verdict is Verdict.PASS
        assert not any("histogram" in q or "retries" in q for q in provider.asked)


def test_the_release_records_every_check_with_its_value_and_verdict():
    status = ReleaseStatus(phase=ReleasePhase.PROGRESSING, step=0, weight=25, step_started_at=T0,
                           canary_ready_at=T0, started_at=T0)
    checks = (CheckOutcome("latency", "policy", 0.29, 0.08, 400, Judgement(Verdict.FAIL, "slow")),
              CheckOutcome("own", "service", math.nan, None, None, Judgement(Verdict.ERROR, "NaN")))
    analysis = Analysis(T0, T0 + timedelta(seconds=10), Sample(100, 0), Sample(300, 0),
                        Judgement(Verdict.FAIL, "slow"), checks)
    tier = TierSettings(steps=[25, 50], step_duration="10s")
    decided = plan(View(now=T0 + timedelta(seconds=11), status=status, steps=[25, 50], to_revision="n",
                        from_revision="o", tier=tier,
                        deployment=DeploymentView("n", True, 3, True, False), canary=CanaryView(1, 1),
                        analysis=analysis))
    assert decided.status.phase is ReleasePhase.ROLLING_BACK
    recorded = decided.status.analyses[-1].to_wire()["checks"]
    assert recorded == [
        {"name": "latency", "source": "policy", "canary": 0.29, "baseline": 0.08, "samples": 400.0,
         "verdict": "Fail", "message": "slow"},
        {"name": "own", "source": "service", "verdict": "Error", "message": "NaN"},  # NaN left out of JSON
    ]
