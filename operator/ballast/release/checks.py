"""Verdicts beside the error rate: latency at a quantile, custom checks, and the analysis's overall verdict.

Every function here is pure. A check whose figures are missing or not numbers is an Error, never a pass:
a check that cannot be evaluated says nothing about the canary. The overall verdict of an analysis is the
worst of its parts, Fail before Error before Inconclusive before Pass, so any failing check fails the
step and no check that went unevaluated lets it pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ballast.api.checks import Check, LatencyLimits
from ballast.api.release import Verdict
from ballast.release.verdict import Judgement

SEVERITY = (Verdict.PASS, Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.FAIL)
"""Verdicts from the least to the most severe: the overall verdict is the most severe part's."""


@dataclass(frozen=True)
class LatencySample:
    """One side's latency at the quantile (seconds) and how many requests the histogram observed."""

    seconds: float | None
    samples: float | None


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
    return "above the histogram's largest bucket" if math.isinf(seconds) else f"{seconds * 1000:.0f} ms"


def _bad_figure(name: str, value: float | None, allow_inf: bool = False) -> str | None:
    if value is None:
        return None
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
        return f"{name} is {value}"
    if value < 0:
        return f"{name} is negative ({value:g})"
    return None


def judge_latency(canary: LatencySample, baseline: LatencySample, limits: LatencyLimits) -> Judgement:
    """The latency verdict: the canary's quantile against the ceiling and against the baseline's.

    A quantile in the histogram's +Inf bucket (``histogram_quantile`` answers +Inf) is slower than every
    bucket, which is a real and bad figure, not a broken one. The baseline is compared with only when it
    has enough samples of its own, as the error rate is compared only with a baseline that has traffic.
    """
    label = f"p{limits.quantile * 100:g}"
    for side, sample in (("canary", canary), ("baseline", baseline)):
        problem = _bad_figure("the request count", sample.samples) or _bad_figure(
            "the latency", sample.seconds if sample.samples else None, allow_inf=True)
        if problem:
            return Judgement(Verdict.ERROR, f"The latency histogram's figures for the {side} are unusable: "
                                            f"{problem}. Check the policy's latency queries.")
    if canary.samples is None or canary.samples < limits.min_samples:
        return Judgement(Verdict.INCONCLUSIVE, f"The canary's latency histogram observed {canary.samples or 0:.0f} "
                                               f"requests, fewer than the {limits.min_samples} a {label} needs.")
    if canary.seconds is None:
        return Judgement(Verdict.ERROR, f"The latency query returned no {label} for the canary although its "
                                        f"histogram observed {canary.samples:.0f} requests: check the policy's "
                                        "latency query.")
    ceiling, allowed = limits.max_latency_seconds, limits.max_increase_seconds
    if ceiling is not None and canary.seconds > ceiling:
        return Judgement(Verdict.FAIL, f"Canary {label} latency {_ms(canary.seconds)} is above the ceiling of "
                                       f"{_ms(ceiling)}.")
    comparable = (baseline.samples or 0) >= limits.min_samples and baseline.seconds is not None \
        and math.isfinite(baseline.seconds)
    if allowed is not None and comparable:
        assert baseline.seconds is not None
        if canary.seconds - baseline.seconds > allowed:
            return Judgement(Verdict.FAIL, f"Canary {label} latency {_ms(canary.seconds)} is more than the allowed "
                                           f"{_ms(allowed)} above the baseline's {_ms(baseline.seconds)}.")
    baseline_text = f" (baseline {_ms(baseline.seconds)})" if comparable and baseline.seconds is not None \
        else " (baseline too small to compare)"
    return Judgement(Verdict.PASS, f"Canary {label} latency {_ms(canary.seconds)} over {canary.samples:.0f} "
                                   f"requests{baseline_text} is within the tier's limits.")


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
