"""The split tolerance of the Gateway data plane's tests and benchmark (tests/harness/binomial.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.harness.binomial import acceptance_range, wilson_interval


def tail_masses(n: int, p: float, low: int, high: int) -> tuple[float, float]:
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    return sum(pmf[:low]), sum(pmf[high + 1:])


@given(st.integers(min_value=1, max_value=300), st.floats(min_value=0.0, max_value=1.0),
       st.sampled_from([0.9, 0.95, 0.99, 0.999]))
def test_each_tail_outside_the_range_is_at_most_half_the_risk_and_the_range_is_the_tightest(
        n: int, p: float, confidence: float) -> None:
    low, high = acceptance_range(n, p, confidence)
    assert 0 <= low <= high <= n
    below, above = tail_masses(n, p, low, high)
    tail = (1 - confidence) / 2
    assert below <= tail + 1e-9 and above <= tail + 1e-9
    # One count narrower on either side would put more than half the risk outside (exact sums, no slack).
    wider_below, _ = tail_masses(n, p, low + 1, high)
    _, wider_above = tail_masses(n, p, low, high - 1)
    assert low == n or wider_below > tail - 1e-9
    assert high == low or wider_above > tail - 1e-9


def test_figures_the_benchmark_relies_on() -> None:
    assert acceptance_range(2000, 0.01, 0.99) == (10, 32)
    assert acceptance_range(2000, 0.5, 0.99) == (942, 1058)
    assert acceptance_range(10, 0.0) == (0, 0) and acceptance_range(10, 1.0) == (10, 10)
    low, high = wilson_interval(100, 1000)
    assert low == pytest.approx(0.0829, abs=1e-4) and high == pytest.approx(0.1202, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError, match="0 <= p <= 1"):
        acceptance_range(10, 1.5)
