"""Looking at canaries beside the release passes, so that metric queries never delay an action.

A release pass never waits for the metrics provider. When the machine asks for a window, the pass hands
the look to the :class:`AnalysisRunner`, which runs it on the threads of that provider (each provider
has its own, so one that hangs starves neither another provider's looks nor the threads that write
statuses and roll back), keeps at most one look per release in flight, and when the look is done keeps
its result and asks for a new pass of that release. An
abort, a failing verdict or a canary that is not ready is therefore acted on by the next pass, however
long another look takes.

Query templates become samples here, for canary analysis and for error budgets alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime
from string import Template
from typing import Literal

from ballast.api.checks import LATENCY_CHECK, Check
from ballast.api.release import Verdict
from ballast.api.releasepolicy import PrometheusQueries, TierSettings
from ballast.instruments import ANALYSES_IN_FLIGHT, ANALYSIS_VERDICTS, CHECK_VERDICTS
from ballast.kube.deployments import canary_name, deployment_pods_pattern
from ballast.metrics.provider import MetricProvider, ProviderUnavailable
from ballast.release.checks import CheckOutcome, Histogram, judge_check, judge_latency, overall
from ballast.release.machine import Analysis
from ballast.release.statistics import error_budget_remaining
from ballast.release.verdict import Z_95, Z_EARLY, Judgement, Sample, implausible, judge

logger = logging.getLogger(__name__)

ReleaseKey = tuple[str, ...]
"""(namespace, name) of a Release."""


def render(template: str, values: dict[str, str]) -> str:
    return Template(template).safe_substitute(values)


def sample(provider: MetricProvider, queries: PrometheusQueries, namespace: str, pods: str, window: str) -> Sample:
    """Requests and errors of the pods matching ``pods`` over ``window`` (blocking; may raise ProviderUnavailable).

    No error series at all means no errors; a figure that is there is taken as it is (NaN included), and
    judged by :func:`ballast.release.verdict.judge`.
    """
    values = {"namespace": namespace, "pods": pods, "window": window}
    requests = provider.query(render(queries.requests, values))
    errors = provider.query(render(queries.errors, values))
    return Sample(requests=requests, errors=0.0 if errors is None and requests is not None else errors)


def histogram(provider: MetricProvider, queries: PrometheusQueries, values: dict[str, str]) -> Histogram | None:
    """One side's latency buckets over the window; None without data (may raise ProviderUnavailable, and
    ValueError when the answer is not a histogram's)."""
    counts = provider.query_by(render(queries.latency_buckets, {**values, "histogram": queries.latency_histogram}),
                               "le")
    return Histogram.from_counts(counts) if counts else None


def _latency_outcome(provider: MetricProvider, queries: PrometheusQueries, tier: TierSettings,
                     sides: tuple[dict[str, str], dict[str, str]]) -> CheckOutcome | None:
    limits = tier.latency
    if limits is None:
        return None
    try:
        canary, baseline = (histogram(provider, queries, side) for side in sides)
    except ProviderUnavailable as error:
        return CheckOutcome(LATENCY_CHECK, "policy", None, None, None,
                            Judgement(Verdict.ERROR, f"The latency could not be measured: {error}"))
    except ValueError as error:
        return CheckOutcome(LATENCY_CHECK, "policy", None, None, None, Judgement(
            Verdict.ERROR, f"The latency histogram {queries.latency_histogram} is unusable: {error}. Check the "
                           "policy's latencyHistogram and latencyBuckets."))

    def estimate(side: Histogram | None) -> float | None:
        return side.quantile(limits.quantile) if side and side.samples else None
    return CheckOutcome(LATENCY_CHECK, "policy", estimate(canary), estimate(baseline),
                        canary.samples if canary else None, judge_latency(canary, baseline, limits))


def _custom_outcome(provider: MetricProvider, check: Check, source: Literal["policy", "service"],
                    sides: tuple[dict[str, str], dict[str, str]]) -> CheckOutcome:
    canary = baseline = None
    try:
        canary = provider.query(render(check.query, sides[0]))
        if check.max_increase is not None:
            baseline = provider.query(render(check.query, sides[1]))
    except ProviderUnavailable as error:
        judgement = Judgement(Verdict.ERROR, f"Check {check.name} could not be evaluated: {error}")
    else:
        judgement = judge_check(check, canary, baseline)
    return CheckOutcome(check.name, source, canary, baseline, None, judgement)


def judge_checks(provider: MetricProvider, queries: PrometheusQueries, tier: TierSettings,
                 service_checks: Sequence[Check], sides: tuple[dict[str, str], dict[str, str]]
                 ) -> tuple[CheckOutcome, ...]:
    """The latency (where the tier sets it), the tier's custom checks and the service's, each judged on its own
    (blocking; a check the provider cannot answer is an Error of that check)."""
    latency = _latency_outcome(provider, queries, tier, sides)
    custom = [*(_custom_outcome(provider, check, "policy", sides) for check in tier.checks),
              *(_custom_outcome(provider, check, "service", sides) for check in service_checks)]
    return (*([latency] if latency else []), *custom)


def look(provider: MetricProvider, queries: PrometheusQueries, namespace: str, canary_pods: str, stable_pods: str,
         window: tuple[datetime, datetime], tier: TierSettings, early: bool,
         service_checks: Sequence[Check] = ()) -> Analysis:
    """Query the canary's and the baseline's traffic over ``window`` and judge it (blocking, never raises
    ProviderUnavailable: a provider that cannot be asked gives an analysis in Error).

    Latency and custom checks are judged only at a step's verdict: a quantile or a custom figure over the few
    seconds of an early look is noise, and early looks exist to catch a clearly failing error rate fast.
    """
    seconds = f"{max(1, round((window[1] - window[0]).total_seconds()))}s"
    try:
        canary = sample(provider, queries, namespace, canary_pods, seconds)
        baseline = sample(provider, queries, namespace, stable_pods, seconds)
    except ProviderUnavailable as error:
        return unknown(window, f"The metrics provider could not be asked: {error}")
    rate = judge(canary, baseline, tier, Z_EARLY if early else Z_95)
    if early:
        return Analysis(window[0], window[1], canary, baseline, rate)
    sides = ({"namespace": namespace, "pods": canary_pods, "window": seconds},
             {"namespace": namespace, "pods": stable_pods, "window": seconds})
    checks = judge_checks(provider, queries, tier, service_checks, sides)
    return Analysis(window[0], window[1], canary, baseline, overall(rate, checks), checks)


def unknown(window: tuple[datetime, datetime], why: str) -> Analysis:
    nothing = Sample(None, None)
    return Analysis(window[0], window[1], nothing, nothing, Judgement(Verdict.ERROR, why))


def measure_error_budget(provider: MetricProvider, queries: PrometheusQueries, namespace: str,
                         deployment_names: list[str], availability: float, window: str) -> float | None:
    """The share of a service's error budget left over its SLO window (blocking; None when unknown)."""
    if not deployment_names:
        return None
    try:
        # The service's users meet its canaries too: their errors spend the same budget.
        pods = deployment_pods_pattern([*deployment_names, *(canary_name(name) for name in deployment_names)])
        measured = sample(provider, queries, namespace, pods, window)
    except ProviderUnavailable:
        return None
    if measured.requests is None or measured.errors is None or implausible(measured):
        return None
    return error_budget_remaining(measured.requests, measured.errors, availability)


class AnalysisRunner:
    """At most one look per release in flight, on its provider's executor; results kept until forgotten."""

    def __init__(self, on_done: Callable[[ReleaseKey], None]) -> None:
        self._on_done = on_done
        self._in_flight: set[ReleaseKey] = set()
        self._latest: dict[ReleaseKey, Analysis] = {}

    def latest(self, key: ReleaseKey) -> Analysis | None:
        return self._latest.get(key)

    def in_flight(self, key: ReleaseKey) -> bool:
        return key in self._in_flight

    def start(self, key: ReleaseKey, window: tuple[datetime, datetime], tier: str, early: bool,
              job: Callable[[], Analysis], executor: Executor) -> bool:
        """Run ``job`` unless a look of this release is still running; True when it was started."""
        if key in self._in_flight:
            return False
        self._in_flight.add(key)
        ANALYSES_IN_FLIGHT.inc()
        future = asyncio.get_running_loop().run_in_executor(executor, job)
        future.add_done_callback(lambda done: self._finished(key, window, tier, early, done))
        return True

    def _finished(self, key: ReleaseKey, window: tuple[datetime, datetime], tier: str, early: bool,
                  done: asyncio.Future[Analysis]) -> None:
        self._in_flight.discard(key)
        ANALYSES_IN_FLIGHT.dec()
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            logger.error("Analysis of %r failed unexpectedly.", key, exc_info=error)
            analysis = unknown(window, f"The analysis failed unexpectedly: {error}")
        else:
            analysis = done.result()
        verdict = analysis.judgement.verdict
        if not early or verdict is Verdict.FAIL:
            ANALYSIS_VERDICTS.labels(tier=tier, verdict=verdict.value).inc()
        for check in analysis.checks:
            CHECK_VERDICTS.labels(tier=tier, check=check.name, verdict=check.judgement.verdict.value).inc()
        self._latest[key] = analysis
        self._on_done(key)

    def forget(self, key: ReleaseKey) -> None:
        self._latest.pop(key, None)
