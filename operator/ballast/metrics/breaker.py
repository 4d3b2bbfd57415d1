"""A circuit breaker per metrics provider: one that keeps failing is not asked again every second.

Every release looks at its canary once a second while a step runs. When the provider hangs or is
down, each look would cost a full client deadline and a thread; after ``threshold`` failures in a row
the breaker opens and refuses further queries at once (as ProviderUnavailable, so analyses record an
``Error``) until a back-off has passed. Then one query is let through as a trial: success closes the
breaker, failure opens it again for twice as long, up to ``max_backoff``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from ballast.instruments import PROVIDER_CIRCUIT_OPEN, PROVIDER_FAILURES
from ballast.metrics.provider import MetricProvider, ProviderUnavailable, UnusableAnswer

T = TypeVar("T")


class CircuitBreaker:
    """Closed, open (refusing) or half-open (one trial in flight); safe to share between threads."""

    def __init__(self, threshold: int = 3, base_backoff: float = 2.0, max_backoff: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._backoff = 0.0
        self._open_until: float | None = None
        self._trial_in_flight = False

    @property
    def open(self) -> bool:
        with self._lock:
            return self._open_until is not None

    def retry_in(self) -> float:
        """Seconds until the next trial is allowed (0 when closed or due)."""
        with self._lock:
            return 0.0 if self._open_until is None else max(0.0, self._open_until - self._clock())

    def allow(self) -> bool:
        """Whether a call may go to the provider now; a True while open claims the single trial."""
        with self._lock:
            if self._open_until is None:
                return True
            if self._trial_in_flight or self._clock() < self._open_until:
                return False
            self._trial_in_flight = True
            return True

    def succeeded(self) -> None:
        with self._lock:
            self._failures, self._backoff, self._open_until, self._trial_in_flight = 0, 0.0, None, False

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._open_until is not None or self._failures >= self.threshold:
                self._backoff = min(self.max_backoff, self._backoff * 2 if self._backoff else self.base_backoff)
                self._open_until = self._clock() + self._backoff


class GuardedProvider:
    """A metric provider behind a circuit breaker; the same interface, refusing fast while open."""

    def __init__(self, provider: MetricProvider, name: str, breaker: CircuitBreaker | None = None) -> None:
        self.provider = provider
        self.name = name
        self.breaker = breaker or CircuitBreaker()
        self._last_failure = ""

    def query(self, promql: str) -> float | None:
        return self._call(lambda: self.provider.query(promql))

    def query_by(self, promql: str, label: str) -> dict[str, float]:
        return self._call(lambda: self.provider.query_by(promql, label))

    def alert_rule_names(self) -> frozenset[str]:
        return self._call(self.provider.alert_rule_names)

    def _call(self, call: Callable[[], T]) -> T:
        if not self.breaker.allow():
            PROVIDER_FAILURES.labels(provider=self.name, state="refused").inc()
            raise ProviderUnavailable(
                f"{self.name} is not asked: it failed {self.breaker.threshold} or more times in a row; the next "
                f"try is in {self.breaker.retry_in():.0f} s. Last failure: {self._last_failure}")
        try:
            result = call()
        except UnusableAnswer:
            self.breaker.succeeded()  # it answered: the query is wrong, not the provider
            raise
        except ProviderUnavailable as error:
            self._last_failure = str(error)
            self.breaker.failed()
            PROVIDER_FAILURES.labels(provider=self.name, state="failed").inc()
            PROVIDER_CIRCUIT_OPEN.labels(provider=self.name).set(self.breaker.open)
            raise
        self.breaker.succeeded()
        PROVIDER_CIRCUIT_OPEN.labels(provider=self.name).set(0)
        return result
