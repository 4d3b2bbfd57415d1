"""What analysis judges besides the error rate: latency from a histogram, and named custom checks.

Both are written by platform teams per risk tier (ReleasePolicy) and, for custom checks, by service teams
(ServiceOwnership). Their query templates know the same variables as the default queries, and a template
naming any other is refused at admission: an unknown ``$variable`` would reach Prometheus as text and
make every analysis an Error.
"""

from __future__ import annotations

import math
from string import Template
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from ballast.api.common import ApiModel, Duration, parse_duration

QUERY_VARIABLES = ("namespace", "pods", "window")
"""What every analysis query template may use: ``$namespace``, ``$pods`` (a regular expression of the exact
pod names of one side) and ``$window`` (the analysis window, such as ``300s``)."""
LATENCY_VARIABLES = (*QUERY_VARIABLES, "histogram")
"""The latency template may also use ``$histogram`` (the policy's ``_bucket`` series)."""
LATENCY_CHECK = "latency"
"""The name the latency check is recorded under; no custom check may take it."""
CHECK_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
MAX_CHECKS = 10
"""Custom checks per tier and per service: each is a query per analysis, and a Release keeps 30 analyses."""


def unknown_variables(template: str, known: tuple[str, ...]) -> list[str]:
    """The ``$variables`` a query template uses that are not in ``known``, or ``["$"]`` for a stray ``$``."""
    parsed = Template(template)
    if not parsed.is_valid():
        return ["$"]
    return sorted(set(parsed.get_identifiers()) - set(known))


def template_problem(template: str, known: tuple[str, ...]) -> str | None:
    """Why a query template cannot be rendered, as the end of a sentence, or None."""
    unknown = unknown_variables(template, known)
    if not unknown:
        return None
    allowed = ", ".join(f"${v}" for v in known)
    if unknown == ["$"]:
        return f"has a '$' that starts no variable: write $$ for a literal dollar sign, or use only {allowed}"
    return f"uses {', '.join(f'${v}' for v in unknown)}: the templates know only {allowed}"


def _query(template: str) -> str:
    if problem := template_problem(template, QUERY_VARIABLES):
        raise ValueError(f"the query {problem}")
    return template


CheckQuery = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_query)]


class Check(ApiModel):
    """A named PromQL query about one side's pods, and the limits its value must keep.

    The query runs for the canary's pods (and for the stable pods when ``maxIncrease`` is set) over the
    analysis window, and must return one number. Any failing check fails the step; a check that cannot be
    evaluated (no data, not one number, the provider down) makes the analysis an Error, never a pass.
    """

    name: str = Field(min_length=1, max_length=63, pattern=CHECK_NAME_PATTERN)
    """Name shown in the analysis and in ``kubectl ballast describe``, e.g. ``queue-wait``."""
    query: CheckQuery
    """PromQL template; ``$namespace``, ``$pods`` and ``$window`` are substituted, e.g.
    ``sum(increase(jobs_retried_total{namespace="$namespace",pod=~"$pods"}[$window]))``."""
    ceiling: float | None = None
    """The canary's value above this fails the step."""
    floor: float | None = None
    """The canary's value below this fails the step."""
    max_increase: float | None = Field(default=None, ge=0)
    """The canary's value may exceed the stable pods' value by at most this (same query, baseline pods)."""

    @model_validator(mode="after")
    def _has_a_limit(self) -> Check:
        limits = (self.ceiling, self.floor, self.max_increase)
        if all(limit is None for limit in limits):
            raise ValueError(f"check {self.name!r} sets no limit: set ceiling, floor or maxIncrease "
                             "(a comparison with the baseline)")
        if any(limit is not None and not math.isfinite(limit) for limit in limits):
            raise ValueError(f"check {self.name!r}: ceiling, floor and maxIncrease must be finite numbers")
        if self.ceiling is not None and self.floor is not None and self.floor > self.ceiling:
            raise ValueError(f"check {self.name!r}: floor {self.floor:g} is above ceiling {self.ceiling:g}, so "
                             "every value would fail: lower the floor or raise the ceiling")
        if self.max_increase is not None and "pods" not in Template(self.query).get_identifiers():
            raise ValueError(f"check {self.name!r} compares with the baseline (maxIncrease) but its query does not "
                             "select pods with $pods: add pod=~\"$pods\" so each side measures its own pods")
        if self.name == LATENCY_CHECK:
            raise ValueError(f"check name {LATENCY_CHECK!r} is the latency check's: pick another name")
        return self


def _unique_names(checks: list[Check]) -> list[Check]:
    names = [c.name for c in checks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"check names must be unique; repeated: {', '.join(repeated)}: rename one of each")
    return checks


Checks = Annotated[list[Check], Field(max_length=MAX_CHECKS), AfterValidator(_unique_names)]


class LatencyLimits(ApiModel):
    """Canary against baseline latency at one quantile (p95, p99, ...), from the policy's latency histogram.

    Judged once per step, at the step's verdict: a quantile over a few seconds of traffic says little.
    """

    quantile: float = Field(default=0.99, ge=0.5, lt=1.0)
    """Which latency is judged: 0.99 is p99, 0.95 is p95."""
    max_latency: Duration | None = None
    """Ceiling on the canary's latency at the quantile, e.g. ``500ms``; above it the step fails."""
    max_increase: Duration | None = None
    """How much slower than the baseline's the canary's latency at the quantile may be, e.g. ``100ms``."""
    min_samples: int = Field(default=100, ge=1)
    """Fewer canary requests than this in the histogram over the window make the latency Inconclusive."""

    @model_validator(mode="after")
    def _judgeable(self) -> LatencyLimits:
        if self.max_latency is None and self.max_increase is None:
            raise ValueError("latency sets neither maxLatency nor maxIncrease: set at least one, or leave "
                             "latency out to judge error rates only")
        # With fewer samples than 1/(1-q), the estimated quantile is the slowest request seen: one slow
        # request would decide the step.
        needed = math.ceil(1 / (1 - self.quantile) - 1e-9)
        if self.min_samples < needed:
            raise ValueError(f"latency minSamples {self.min_samples} is too few to estimate the "
                             f"p{self.quantile * 100:g}: raise it to at least {needed}")
        return self

    @property
    def max_latency_seconds(self) -> float | None:
        return parse_duration(self.max_latency).total_seconds() if self.max_latency else None

    @property
    def max_increase_seconds(self) -> float | None:
        return parse_duration(self.max_increase).total_seconds() if self.max_increase else None
