"""Metric providers: what counts as an answer, and when a failing provider stops being asked."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ballast.metrics.breaker import CircuitBreaker, GuardedProvider
from ballast.metrics.prometheus import instant_value, values_by
from ballast.metrics.provider import ProviderUnavailable, UnusableAnswer


def series(value: str, **labels: str) -> dict:
    return {"metric": labels, "value": [1700000000.0, value]}


class TestValuesBy:
    def test_one_value_per_label(self):
        assert values_by([series("3", le="0.1"), series("5", le="+Inf")], "q", "le") == {"0.1": 3.0, "+Inf": 5.0}
        assert values_by([], "q", "le") == {}

    @pytest.mark.parametrize(("result", "why"), [
        ([series("3", le="0.1"), series("4", le="0.1")], r"one series per le: aggregate it with sum by \(le\)"),
        ([series("3")], "one series per le"),
        ([series("x", le="0.1")], "not a number"),
        ([1700000000.0, "3"], "scalar"),
    ])
    def test_anything_else_is_unusable_and_says_why(self, result, why):
        with pytest.raises(UnusableAnswer, match=why):
            values_by(result, "q", "le")


class TestInstantValue:
    def test_one_series_is_its_value(self):
        assert instant_value([series("12.5")], "q") == 12.5

    def test_an_empty_vector_is_no_data(self):
        assert instant_value([], "q") is None

    @pytest.mark.parametrize("text", ["NaN", "+Inf", "-Inf", "-3"])
    def test_odd_numbers_come_back_as_they_are_for_the_verdict_to_judge(self, text):
        value = instant_value([series(text)], "q")
        assert value is not None and (math.isnan(value) or value == float(text))

    @pytest.mark.parametrize(("result", "why"), [
        ([1700000000.0, "3"], "scalar"),
        ([{"metric": {}, "values": [[1700000000.0, "1"], [1700000015.0, "2"]]}], "range vector"),
        ([series("1", pod="a"), series("2", pod="b")], "2 series"),
        ([series("lots")], "not a number"),
        ([{"metric": {}}], "not a number"),
        ({"resultType": "vector"}, "not an instant vector"),
    ])
    def test_anything_else_is_unusable_and_says_why(self, result, why):
        with pytest.raises(UnusableAnswer, match=why):
            instant_value(result, "sum(x)")

    @given(st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                      max_size=3), max_leaves=10))
    def test_garbage_never_raises_anything_but_unusable(self, result):
        try:
            value = instant_value(result, "q")
        except UnusableAnswer:
            return
        assert value is None or isinstance(value, float)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """A provider whose next answers are scripted: a number, or an exception to raise."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing: Exception | None = ProviderUnavailable("hung")

    def query(self, promql: str) -> float | None:
        self.calls += 1
        if self.failing is not None:
            raise self.failing
        return 1.0

    def alert_rule_names(self) -> frozenset[str]:
        return frozenset()


class TestCircuitBreaker:
    def test_opens_after_the_threshold_and_refuses_without_asking(self):
        clock, flaky = Clock(), Flaky()
        guarded = GuardedProvider(flaky, "Prometheus at x", CircuitBreaker(threshold=3, base_backoff=2, clock=clock))
        for _ in range(3):
            with pytest.raises(ProviderUnavailable, match="hung"):
                guarded.query("q")
        for _ in range(100):
            with pytest.raises(ProviderUnavailable, match="is not asked"):
                guarded.query("q")
        assert flaky.calls == 3

    def test_one_trial_after_the_backoff_which_doubles_on_failure(self):
        clock, flaky = Clock(), Flaky()
        breaker = CircuitBreaker(threshold=1, base_backoff=2, max_backoff=5, clock=clock)
        guarded = GuardedProvider(flaky, "p", breaker)
        with pytest.raises(ProviderUnavailable):
            guarded.query("q")
        clock.now = 2.0
        with pytest.raises(ProviderUnavailable, match="hung"):
            guarded.query("q")  # the trial
        assert flaky.calls == 2 and breaker.retry_in() == 4
        clock.now = 5.9
        with pytest.raises(ProviderUnavailable, match="is not asked"):
            guarded.query("q")
        clock.now = 6.0
        flaky.failing = None
        assert guarded.query("q") == 1.0
        assert not breaker.open and guarded.query("q") == 1.0

    def test_backoff_is_capped(self):
        clock = Clock()
        breaker = CircuitBreaker(threshold=1, base_backoff=2, max_backoff=5, clock=clock)
        for _ in range(10):
            breaker.failed()
        assert breaker.retry_in() == 5

    def test_only_one_trial_at_a_time(self):
        clock = Clock()
        breaker = CircuitBreaker(threshold=1, base_backoff=1, clock=clock)
        breaker.failed()
        clock.now = 1.0
        assert breaker.allow() is True
        assert breaker.allow() is False

    def test_an_unusable_answer_is_the_query_not_the_provider(self):
        flaky = Flaky()
        flaky.failing = UnusableAnswer("a matrix")
        guarded = GuardedProvider(flaky, "p", CircuitBreaker(threshold=1, clock=Clock()))
        for _ in range(5):
            with pytest.raises(UnusableAnswer):
                guarded.query("q")
        assert flaky.calls == 5 and not guarded.breaker.open
