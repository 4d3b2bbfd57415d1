"""The interface every metric provider implements (after Flagger's small provider interface).

Flagger's second method, ``IsOnline``, is left out: an unreachable backend shows as ProviderUnavailable
on the query that needed it, which is where Ballast decides what unknown data means (an ``Error``
verdict, apart from ``Inconclusive``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class ProviderUnavailable(Exception):
    """The provider could not be asked, did not answer in time, or answered something unusable.

    Callers treat the data as unknown: an analysis in ``Error``, never a pass.
    """


class UnusableAnswer(ProviderUnavailable):
    """The provider answered, but not with one number (a matrix, several series, a string).

    The provider itself is reachable, so this says more about the query than about the provider.
    """


@dataclass(frozen=True)
class Timeouts:
    """Client-side deadlines of every request to a provider, in seconds."""

    connect: float = 2.0
    """To open the connection: a provider that is down fails fast."""
    read: float = 5.0
    """To receive the answer once connected: a provider that hangs costs at most this."""

    def as_requests(self) -> tuple[float, float]:
        return self.connect, self.read


class MetricProvider(Protocol):
    def query(self, promql: str) -> float | None:
        """The scalar value of an instant query; None when the query returns no data.

        Raises ProviderUnavailable when the backend cannot be asked or answers unusably.
        """

    def query_by(self, promql: str, label: str) -> dict[str, float]:
        """The values of an instant query, one per series, keyed by the series' ``label`` (such as the
        ``le`` of a histogram's buckets); empty when the query returns no data.

        Raises ProviderUnavailable when the backend cannot be asked or answers unusably.
        """

    def alert_rule_names(self) -> frozenset[str]:
        """Names of the alerting rules the backend has loaded. Raises ProviderUnavailable."""
