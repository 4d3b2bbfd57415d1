"""Latency and custom checks: their models, their verdicts and the analysis's overall verdict, as pure functions."""

from __future__ import annotations

import math
import random
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
from ballast.release.checks import SEVERITY, CheckOutcome, Histogram, judge_check, judge_latency, overall
from ballast.release.machine import Analysis, CanaryView, DeploymentView, View, plan
from ballast.release.verdict import Judgement, Sample

P99 = LatencyLimits(quantile=0.99, max_latency="500ms", max_increase="100ms", min_samples=100)
INCREASE = LatencyLimits(quantile=0.99, max_increase="100ms", min_samples=100)


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
        with pytest.raises(ValidationError, match=r"query latencyBuckets uses \$quantile: the templates know only"):
            PrometheusQueries.model_validate({"latencyBuckets": "sum by (le) ($histogram{q=\"$quantile\"})"})


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


BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf)


def observed(*seconds: float) -> Histogram:
    """The histogram of these request latencies in the demo app's buckets."""
    return Histogram.from_counts({("+Inf" if math.isinf(b) else str(b)): float(sum(s <= b for s in seconds))
                                  for b in BOUNDS})


def uniform(mean: float, jitter: float, n: int) -> Histogram:
    """n requests spread evenly over mean * (1 +- jitter), as the simulator and the demo app answer."""
    return observed(*(mean * (1 - jitter + 2 * jitter * (i + 0.5) / n) for i in range(n)))


class TestHistogram:
    def test_quantile_is_histogram_quantiles(self):
        # Prometheus: rank 0.99*400 = 396 lies in (0.25, 0.5] holding 200 of them: 0.25 + 0.25 * 196/200.
        h = observed(*[0.08] * 200, *[0.3] * 200)
        assert h.quantile(0.99) == pytest.approx(0.495)
        assert h.quantile(0.5) == pytest.approx(0.1)
        assert h.start_of_bucket(0.3) == 0.25 and h.start_of_bucket(0.25) == 0.1 and h.samples == 400

    def test_a_quantile_in_the_inf_bucket_is_the_largest_finite_bound(self):
        assert observed(*[9.0] * 10).quantile(0.99) == 2.5

    def test_counts_are_made_non_decreasing(self):
        h = Histogram.from_counts({"0.1": 10.2, "0.25": 10.0, "+Inf": 10.1})
        assert [c for _, c in h.buckets] == [10.2, 10.2, 10.2]

    @pytest.mark.parametrize(("counts", "message"), [
        ({"0.1": 3}, "no le=\"\\+Inf\" bucket"), ({"fast": 3, "+Inf": 3}, "is not a number"),
        ({"0.1": math.nan, "+Inf": 3}, "holds nan"), ({"0.1": -1, "+Inf": 3}, "holds -1")])
    def test_what_is_not_a_histogram_is_refused(self, counts, message):
        with pytest.raises(ValueError, match=message):
            Histogram.from_counts(counts)

    def test_a_few_slow_requests_are_no_evidence(self):
        # 2 of 160 slower than 100 ms is 1.25 %, but not more than 1 % with confidence.
        assert observed(*[0.04] * 158, 0.2, 0.2).confidently_above(0.99) == 0.025  # not 0.1
        assert observed(*[0.04] * 100, *[0.2] * 60).confidently_above(0.99) == 0.1


class TestLatencyVerdict:
    def test_a_200ms_regression_fails_against_the_baseline(self):
        judgement = judge_latency(uniform(0.25, 0.5, 160), uniform(0.05, 0.5, 480), P99)
        assert judgement.verdict is Verdict.FAIL
        assert judgement.message == ("Canary p99 latency 495 ms over 160 requests is more than the allowed 100 ms "
                                     "above the baseline's 99 ms.")

    def test_the_ceiling_fails_even_without_a_baseline(self):
        judgement = judge_latency(uniform(1.5, 0.2, 400), None, P99)
        assert judgement.verdict is Verdict.FAIL and "above the ceiling of 500 ms" in judgement.message

    def test_too_few_samples_are_inconclusive_however_slow(self):
        judgement = judge_latency(uniform(5.0, 0, 99), uniform(0.05, 0.5, 480), P99)
        assert judgement.verdict is Verdict.INCONCLUSIVE and "fewer than the 100 a p99 needs" in judgement.message
        assert judge_latency(None, None, P99).verdict is Verdict.INCONCLUSIVE

    def test_a_small_baseline_is_not_compared_with(self):
        judgement = judge_latency(uniform(0.3, 0.1, 400), uniform(0.05, 0.1, 10), P99)
        assert judgement.verdict is Verdict.PASS and "baseline too small to compare" in judgement.message

    @pytest.mark.parametrize("jitter", [0.0, 0.5, 0.9, 1.0])
    @pytest.mark.parametrize("mean_ms", [5, 20, 40, 50, 60, 90, 120, 200, 400])
    def test_jitter_on_both_sides_never_fails_a_version_as_fast_as_the_baseline(self, jitter, mean_ms):
        # Each request takes mean * uniform(1 - jitter, 1 + jitter) on both sides, drawn at random: 50 windows
        # per size, so the canary's few slowest requests fall every which way across the buckets.
        draw = random.Random(mean_ms * 10 + jitter)
        for n in (100, 160, 1000):
            for _ in range(50):
                canary, baseline = (observed(*(mean_ms / 1000 * draw.uniform(1 - jitter, 1 + jitter)
                                               for _ in range(size))) for size in (n, 3 * n))
                judgement = judge_latency(canary, baseline, INCREASE)  # 400 ms +-50 % is above P99's ceiling
                assert judgement.verdict is Verdict.PASS, judgement.message

    @pytest.mark.parametrize("jitter", [0.0, 0.5, 0.9])
    @pytest.mark.parametrize("base_ms", [0, 10, 30, 50, 80, 150])
    def test_200ms_more_on_every_request_always_fails(self, jitter, base_ms):
        for n in (100, 160, 1000):
            judgement = judge_latency(uniform((base_ms + 200) / 1000, jitter, n),
                                      uniform(base_ms / 1000, jitter, 3 * n), INCREASE)
            assert judgement.verdict is Verdict.FAIL, (n, judgement.message)

    def test_a_few_very_slow_requests_fail_nothing(self):
        # 3 of 160 requests took 2 s: the p99 estimate is over a second, but 1.9 % of 160 is no evidence.
        canary = observed(*[0.05] * 157, 2.0, 2.0, 2.0)
        assert canary.quantile(0.99) > 1.0
        assert judge_latency(canary, uniform(0.05, 0.5, 480), P99).verdict is Verdict.PASS

    @given(st.lists(st.sampled_from(BOUNDS[:-1]), min_size=100, max_size=400),
           st.lists(st.sampled_from(BOUNDS[:-1]), min_size=100, max_size=400))
    def test_a_fail_always_has_the_evidence_it_names(self, canary, baseline):
        c, b = observed(*canary), observed(*baseline)
        judgement = judge_latency(c, b, P99)
        thresholds = [t for t in (0.5, b.quantile(0.99) + 0.1) if c.quantile(0.99) > t]
        if judgement.verdict is Verdict.FAIL:
            assert thresholds
            # More than 1 % of the canary's requests really were slower than where the limit's bucket starts.
            assert any(sum(s > c.start_of_bucket(t) for s in canary) / len(canary) > 0.01 for t in thresholds)
        else:
            assert judgement.verdict is Verdict.PASS


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

    def query_by(self, promql, label):
        assert label == "le"
        return self.query(promql) or {}

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
    def answers(self, canary=None, retries=2):
        buckets = {"canary": canary or uniform(0.09, 0.5, 300), "stable": uniform(0.09, 0.5, 900)}
        return Answers({
            **{f'increase(http_request_duration_seconds_bucket{{namespace="ns",pod=~"{side}"}}':
               {("+Inf" if math.isinf(b) else f"{b:g}"): c for b, c in h.buckets} for side, h in buckets.items()},
            'code=~"5..': 0, 'retries{pod=~"canary"}': retries, 'retries{pod=~"stable"}': 1,
            "http_requests_total": 300,
        })

    def test_a_slow_canary_fails_the_analysis_and_every_check_is_recorded(self):
        provider = self.answers(canary=uniform(0.29, 0.5, 300))
        analysis = look(provider, PrometheusQueries(), "ns", "canary", "stable", WINDOW, TIER, early=False,
                        service_checks=[Check(name="own", query="sum(own_metric)", ceiling=5)])
        assert analysis.judgement.verdict is Verdict.FAIL and "p99 latency" in analysis.judgement.message
        assert [(c.name, c.source, c.judgement.verdict) for c in analysis.checks] == [
            ("latency", "policy", Verdict.FAIL), ("retries", "policy", Verdict.PASS),
            ("own", "service", Verdict.ERROR)]  # own_metric has no data: an Error, not a pass
        latency = analysis.checks[0]
        # The figures recorded are each side's histogram_quantile (checked against Prometheus' arithmetic above).
        assert (latency.canary, latency.baseline, latency.samples) == (
            uniform(0.29, 0.5, 300).quantile(0.99), uniform(0.09, 0.5, 900).quantile(0.99), 300)
        assert 0.25 < latency.canary < 0.5 and 0.1 < latency.baseline < 0.25

    def test_a_check_the_provider_cannot_answer_is_an_error_of_that_check(self):
        provider = self.answers(retries=ProviderUnavailable("timed out"))
        analysis = look(provider, PrometheusQueries(), "ns", "canary", "stable", WINDOW, TIER, early=False)
        assert analysis.judgement.verdict is Verdict.ERROR
        assert analysis.judgement.message == "Check retries could not be evaluated: timed out"
        assert analysis.checks[0].judgement.verdict is Verdict.PASS

    def test_a_series_that_is_no_histogram_is_an_error(self):
        provider = self.answers()
        provider.answers['increase(http_request_duration_seconds_bucket{namespace="ns",pod=~"canary"}'] = {"0.1": 3.0}
        analysis = look(provider, PrometheusQueries(), "ns", "canary", "stable", WINDOW, TIER, early=False)
        assert analysis.checks[0].judgement.verdict is Verdict.ERROR
        assert "http_request_duration_seconds_bucket is unusable: there is no" in analysis.checks[0].judgement.message

    def test_early_looks_judge_the_error_rate_only(self):
        provider = self.answers(canary=uniform(5.0, 0, 300))
        analysis = look(provider, PrometheusQueries(), "ns", "canary", "stable", WINDOW, TIER, early=True)
        assert analysis.checks == () and analysis.judgement.verdict is Verdict.PASS
        assert not any("bucket" in q or "retries" in q for q in provider.asked)


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
