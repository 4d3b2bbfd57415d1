"""Verdicts beside the error rate: latency at a quantile, custom checks, and the analysis's overall verdict.

Every function here is pure. A check whose figures are missing or not numbers is an Error, never a pass:
a check that cannot be evaluated says nothing about the canary. The overall verdict of an analysis is the
worst of its parts, Fail before Error before Inconclusive before Pass, so any failing check fails the
step and no check that went unevaluated lets it pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from ballast.api.checks import Check, LatencyLimits
from ballast.api.release import Verdict
from ballast.release.verdict import Z_95, Judgement, wilson_interval

SEVERITY = (Verdict.PASS, Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.FAIL)
"""Verdicts from the least to the most severe: the overall verdict is the most severe part's."""


@dataclass(frozen=True)
class Histogram:
    """One side's requests per latency bucket over the window: (upper bound in seconds, cumulative count),
    ascending, the last bound +Inf. Counts are made non-decreasing (``increase()`` of each bucket is
    extrapolated on its own, so neighbours can disagree by a fraction), as ``histogram_quantile`` does."""

    buckets: tuple[tuple[float, float], ...]

    @classmethod
    def from_counts(cls, counts: Mapping[str, float]) -> Histogram:
        """From ``le`` -> count, as a ``sum by (le)`` query returns them. Raises ValueError with the reason
        when they are not a histogram's (a bound that is not a number, no +Inf bucket, a count that is not a
        finite non-negative number)."""
        bounds = []
        for le, count in counts.items():
            try:
                bound = float(le)
            except ValueError:
                raise ValueError(f"bucket bound le={le!r} is not a number") from None
            if math.isnan(bound) or not math.isfinite(count) or count < 0:
                raise ValueError(f"bucket le={le} holds {count:g} requests")
            bounds.append((bound, count))
        bounds.sort()
        if not bounds or not math.isinf(bounds[-1][0]):
            raise ValueError("there is no le=\"+Inf\" bucket: the series named is not a histogram's _bucket series")
        running, buckets = 0.0, []
        for bound, count in bounds:
            running = max(running, count)
            buckets.append((bound, running))
        return cls(tuple(buckets))

    @property
    def samples(self) -> float:
        return self.buckets[-1][1]

    def _index(self, q: float) -> int:
        rank = q * self.samples
        return next(i for i, (_, count) in enumerate(self.buckets) if count >= rank)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile, computed as Prometheus' ``histogram_quantile`` does: linear within the bucket
        that holds it, the largest finite bound when that bucket is +Inf. Needs samples > 0."""
        index = self._index(q)
        upper, count = self.buckets[index]
        lower, below = self.buckets[index - 1] if index else (0.0, 0.0)
        if math.isinf(upper):
            return lower if index else 0.0
        if index == 0 and upper <= 0:
            return upper
        return lower + (upper - lower) * (q * self.samples - below) / (count - below)

    def start_of_bucket(self, seconds: float) -> float:
        """The lower bound of the bucket ``seconds`` falls in (0 in the first): how finely the histogram
        can tell requests slower than ``seconds`` from faster ones."""
        return max((bound for bound, _ in self.buckets if bound < seconds), default=0.0)

    def confidently_above(self, q: float, z: float = Z_95) -> float:
        """The largest bucket bound the ``q`` quantile exceeds with confidence: more than a (1 - q) share of
        the requests are slower than it, by the Wilson lower bound (0 when no bound qualifies). A few slow
        requests in a small sample never move it."""
        best = 0.0
        for bound, count in self.buckets[:-1]:
            slower = self.samples - count
            if wilson_interval(slower, self.samples, z)[0] > 1 - q:
                best = bound
        return best


@dataclass(frozen=True)
class CheckOutcome:
    """One check as judged: what it measured on each side and its verdict."""

    name: str
    source: Literal["policy", "service"]
    canary: float | None
    baseline: float | None
    samples: float | None
    judgement: Judgement


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _beyond(canary: Histogram, q: float, threshold: float) -> bool:
    """Whether the canary's ``q`` quantile is beyond ``threshold`` on evidence: ``histogram_quantile``'s
    estimate is above it, and more than a (1 - q) share of the canary's requests were, with confidence,
    slower than where the threshold's bucket starts."""
    return canary.quantile(q) > threshold and canary.confidently_above(q) >= canary.start_of_bucket(threshold)


def judge_latency(canary: Histogram | None, baseline: Histogram | None, limits: LatencyLimits) -> Judgement:
    """The latency verdict: the canary's quantile against the ceiling and against the baseline's plus the
    allowed increase, each estimated as ``histogram_quantile`` does.

    An estimate alone is not enough to fail: a handful of slow requests in a few hundred decides a p99. The
    step fails only when, besides, more than a (1 - q) share of the canary's requests were slower than the
    start of the limit's bucket with 95% confidence (Wilson bounds, as for error rates), so a few unlucky
    requests never roll back a good version while +200 ms on every request does at once. ``None`` is no data.
    """
    label = f"p{limits.quantile * 100:g}"
    samples = canary.samples if canary else 0.0
    if canary is None or samples < limits.min_samples:
        return Judgement(Verdict.INCONCLUSIVE, f"The canary's latency histogram observed {samples:.0f} requests, "
                                               f"fewer than the {limits.min_samples} a {label} needs.")
    ceiling, allowed = limits.max_latency_seconds, limits.max_increase_seconds
    estimate = canary.quantile(limits.quantile)
    if ceiling is not None and _beyond(canary, limits.quantile, ceiling):
        return Judgement(Verdict.FAIL, f"Canary {label} latency {_ms(estimate)} over {samples:.0f} requests is "
                                       f"above the ceiling of {_ms(ceiling)}.")
    if baseline is None or baseline.samples < limits.min_samples:
        return Judgement(Verdict.PASS, f"Canary {label} latency {_ms(estimate)} over {samples:.0f} requests is "
                                       "within the ceiling (baseline too small to compare).")
    base = baseline.quantile(limits.quantile)
    if allowed is not None and _beyond(canary, limits.quantile, base + allowed):
        return Judgement(Verdict.FAIL, f"Canary {label} latency {_ms(estimate)} over {samples:.0f} requests is "
                                       f"more than the allowed {_ms(allowed)} above the baseline's {_ms(base)}.")
    return Judgement(Verdict.PASS, f"Canary {label} latency {_ms(estimate)} over {samples:.0f} requests (baseline "
                                   f"{_ms(base)}) is within the tier's limits.")


def judge_check(check: Check, canary: float | None, baseline: float | None) -> Judgement:
    """A custom check's verdict from its value on the canary (and on the baseline when it compares)."""
    subject = f"Check {check.name}"
    if canary is None:
        return Judgement(Verdict.ERROR, f"{subject} returned no data for the canary: a check that cannot be "
                                        "evaluated is no pass. Make its query return one number.")
    if not math.isfinite(canary):
        return Judgement(Verdict.ERROR, f"{subject} returned {canary} for the canary, not a number to judge.")
    if check.ceiling is not None and canary > check.ceiling:
        return Judgement(Verdict.FAIL, f"{subject}: canary value {canary:g} is above the ceiling {check.ceiling:g}.")
    if check.floor is not None and canary < check.floor:
        return Judgement(Verdict.FAIL, f"{subject}: canary value {canary:g} is below the floor {check.floor:g}.")
    if check.max_increase is not None:
        if baseline is None or not math.isfinite(baseline):
            return Judgement(Verdict.ERROR, f"{subject} returned {'no data' if baseline is None else baseline} for "
                                            "the baseline, so the canary cannot be compared with it.")
        if canary - baseline > check.max_increase:
            return Judgement(Verdict.FAIL, f"{subject}: canary value {canary:g} exceeds the baseline's "
                                           f"{baseline:g} by more than the allowed {check.max_increase:g}.")
    baseline_text = f" (baseline {baseline:g})" if baseline is not None and math.isfinite(baseline) else ""
    return Judgement(Verdict.PASS, f"{subject}: canary value {canary:g}{baseline_text} is within its limits.")


def overall(rate: Judgement, checks: Sequence[CheckOutcome]) -> Judgement:
    """The analysis's verdict: the most severe of the error rate's and the checks'; ties go to the error
    rate, then to the first check. A pass names the checks it includes."""
    worst = rate
    for outcome in checks:
        if SEVERITY.index(outcome.judgement.verdict) > SEVERITY.index(worst.verdict):
            worst = outcome.judgement
    if worst.verdict is Verdict.PASS and checks:
        names = ", ".join(o.name for o in checks)
        return Judgement(Verdict.PASS, f"{rate.message} Checks passed: {names}.")
    return worst
