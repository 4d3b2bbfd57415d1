"""From request and error counts to a verdict, with statistical confidence so small samples never flap.

A step fails only when the data shows, at 95% confidence, that the canary is above the tier's error
ceiling or worse than the baseline by more than the allowed increase. When the point estimate looks
bad but the interval still admits a good canary, the verdict is Inconclusive (more data is needed),
never Fail: with a 0.5% background error rate, good canaries must not be rolled back by chance.
Bounds are Wilson score intervals, which behave at 0 errors and at small n where the normal
approximation does not; the baseline comparison is the conservative difference of the canary's lower
bound and the baseline's upper bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ballast.api.release import Verdict
from ballast.api.releasepolicy import TierSettings

Z_95 = 1.959963984540054
"""Two-sided 95% normal quantile: the confidence of the verdict at the end of a step."""
Z_EARLY = 3.290526731491926
"""Two-sided 99.9% quantile, for the checks made while a step runs. Looking at the data every second
and acting on the first bad look would fail good canaries by chance (the peeking problem); demanding
far stronger evidence from each early look keeps the overall false-failure rate negligible."""


@dataclass(frozen=True)
class Sample:
    """Requests and errors of one side over the analysis window; None where there was no data."""

    requests: float | None
    errors: float | None

    @property
    def has_data(self) -> bool:
        return self.requests is not None and self.requests > 0 and self.errors is not None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.has_data else None  # type: ignore[operator]


def wilson_interval(errors: float, requests: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of an error proportion (counts may be fractional, as PromQL increase() is)."""
    if requests < 1e-9:  # no evidence; and a subnormal count would overflow the arithmetic below
        return 0.0, 1.0
    p = min(max(errors / requests, 0.0), 1.0)
    denominator = 1 + z * z / requests
    centre = (p + z * z / (2 * requests)) / denominator
    margin = z * math.sqrt(p * (1 - p) / requests + z * z / (4 * requests * requests)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    message: str


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def implausible(sample: Sample) -> str | None:
    """Why a sample's figures cannot be counts of requests (NaN, infinite, negative, more errors than
    requests), or None. Such an answer is a broken query or provider, never evidence about the canary."""
    figures = {"requests": sample.requests, "errors": sample.errors}
    for name, value in figures.items():
        if value is not None and not math.isfinite(value):
            return f"{name} is {value}"
        if value is not None and value < 0:
            return f"{name} is negative ({value:g})"
    if sample.requests is not None and sample.errors is not None and sample.errors > sample.requests:
        return f"errors ({sample.errors:g}) exceed requests ({sample.requests:g})"
    return None


def judge(canary: Sample, baseline: Sample, tier: TierSettings, z: float = Z_95) -> Judgement:
    """The verdict of one analysis, at the confidence ``z`` gives."""
    for side, sample in (("canary", canary), ("baseline", baseline)):
        if problem := implausible(sample):
            return Judgement(Verdict.ERROR, f"The metrics provider's figures for the {side} are unusable: {problem}. "
                                            "Check the policy's queries.")
    if not canary.has_data:
        return Judgement(Verdict.INCONCLUSIVE, "Prometheus returned no canary traffic for the window.")
    assert canary.requests is not None and canary.errors is not None
    if canary.requests < tier.min_requests:
        return Judgement(Verdict.INCONCLUSIVE, f"The canary served {canary.requests:.0f} requests, fewer than the "
                                               f"{tier.min_requests} a verdict needs.")
    rate = canary.errors / canary.requests
    low, _ = wilson_interval(canary.errors, canary.requests, z)
    if low > tier.max_error_rate:
        return Judgement(Verdict.FAIL, f"Canary error rate {_pct(rate)} is above the ceiling of "
                                       f"{_pct(tier.max_error_rate)} (lower confidence bound {_pct(low)}).")
    if baseline.has_data:
        assert baseline.requests is not None and baseline.errors is not None
        base_rate = baseline.errors / baseline.requests
        _, base_high = wilson_interval(baseline.errors, baseline.requests, z)
        if low - base_high > tier.max_increase:
            return Judgement(Verdict.FAIL, f"Canary error rate {_pct(rate)} exceeds the baseline's "
                                           f"{_pct(base_rate)} by more than the allowed {_pct(tier.max_increase)} "
                                           f"with confidence.")
        if rate - base_rate > tier.max_increase:
            return Judgement(Verdict.INCONCLUSIVE, f"Canary error rate {_pct(rate)} looks worse than the "
                                                   f"baseline's {_pct(base_rate)}, but not with confidence yet.")
    if rate > tier.max_error_rate:
        return Judgement(Verdict.INCONCLUSIVE, f"Canary error rate {_pct(rate)} is above the ceiling of "
                                               f"{_pct(tier.max_error_rate)}, but not with confidence yet.")
    baseline_text = f" (baseline {_pct(baseline.error_rate)})" if baseline.error_rate is not None else ""
    return Judgement(Verdict.PASS, f"Canary error rate {_pct(rate)} over {canary.requests:.0f} requests"
                                   f"{baseline_text} is within the tier's limits.")
