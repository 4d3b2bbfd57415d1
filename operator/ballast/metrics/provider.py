"""The interface every metric provider implements (after Flagger's two-method provider)."""

from __future__ import annotations

from typing import Protocol


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered nonsense; callers treat the data as unknown."""


class MetricProvider(Protocol):
    def query(self, promql: str) -> float | None:
        """The scalar value of an instant query; None when the query returns no data.

        Raises ProviderUnavailable when the backend cannot be asked.
        """

    def is_online(self) -> bool:
        """Whether the backend answers at all."""

    def alert_rule_names(self) -> frozenset[str]:
        """Names of the alerting rules the backend has loaded. Raises ProviderUnavailable."""
