"""The interface every metric provider implements (after Flagger's small provider interface).

Flagger's second method, ``IsOnline``, is left out: an unreachable backend shows as ProviderUnavailable
on the query that needed it, which is where Ballast decides what unknown data means.
"""

from __future__ import annotations

from typing import Protocol


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered nonsense; callers treat the data as unknown."""


class MetricProvider(Protocol):
    def query(self, promql: str) -> float | None:
        """The scalar value of an instant query; None when the query returns no data.

        Raises ProviderUnavailable when the backend cannot be asked.
        """

    def alert_rule_names(self) -> frozenset[str]:
        """Names of the alerting rules the backend has loaded. Raises ProviderUnavailable."""
