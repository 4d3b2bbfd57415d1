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
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from string import Template

from ballast.api.release import Verdict
from ballast.api.releasepolicy import PrometheusQueries, TierSettings
from ballast.instruments import ANALYSES_IN_FLIGHT, ANALYSIS_VERDICTS
from ballast.kube.deployments import canary_name, deployment_pods_pattern
from ballast.metrics.provider import MetricProvider, ProviderUnavailable
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


def look(provider: MetricProvider, queries: PrometheusQueries, namespace: str, canary_pods: str, stable_pods: str,
         window: tuple[datetime, datetime], tier: TierSettings, early: bool) -> Analysis:
    """Query the canary's and the baseline's traffic over ``window`` and judge it (blocking, never raises
    ProviderUnavailable: a provider that cannot be asked gives an analysis in Error)."""
    seconds = f"{max(1, round((window[1] - window[0]).total_seconds()))}s"
    try:
        canary = sample(provider, queries, namespace, canary_pods, seconds)
        baseline = sample(provider, queries, namespace, stable_pods, seconds)
    except ProviderUnavailable as error:
        return unknown(window, f"The metrics provider could not be asked: {error}")
    return Analysis(window[0], window[1], canary, baseline, judge(canary, baseline, tier, Z_EARLY if early else Z_95))


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
        self._latest[key] = analysis
        self._on_done(key)

    def forget(self, key: ReleaseKey) -> None:
        self._latest.pop(key, None)
