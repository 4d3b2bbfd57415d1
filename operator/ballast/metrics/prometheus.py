"""Prometheus as a metric provider, through prometheus-api-client."""

from __future__ import annotations

from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from ballast.metrics.provider import ProviderUnavailable, Timeouts, UnusableAnswer


class PrometheusProvider:
    """Instant queries and alert rules from one Prometheus server, each with a client-side deadline.

    The client does not retry: a Prometheus that hangs must cost one deadline, not four. Retrying is
    the caller's business (see :mod:`ballast.metrics.breaker`).
    """

    def __init__(self, url: str, timeouts: Timeouts | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeouts = timeouts = timeouts or Timeouts()
        self._client = PrometheusConnect(url=self.url, disable_ssl=False, retry=Retry(total=0, redirect=0),
                                         timeout=timeouts.as_requests())

    def query(self, promql: str) -> float | None:
        return instant_value(self._ask(promql), promql)

    def query_by(self, promql: str, label: str) -> dict[str, float]:
        return values_by(self._ask(promql), promql, label)

    def _ask(self, promql: str) -> Any:
        try:
            return self._client.custom_query(promql, params={"timeout": f"{max(1, int(self.timeouts.read))}s"})
        except (PrometheusApiClientException, requests.RequestException, ValueError, KeyError, TypeError) as error:
            raise ProviderUnavailable(f"Prometheus at {self.url} did not answer {promql!r}: {error}") from error

    def alert_rule_names(self) -> frozenset[str]:
        try:
            response = requests.get(f"{self.url}/api/v1/rules", params={"type": "alert"},
                                    timeout=self.timeouts.as_requests())
            response.raise_for_status()
            groups = response.json()["data"]["groups"]
            return frozenset(
                rule["name"] for group in groups for rule in group.get("rules", []) if rule.get("type") == "alerting"
            )
        except (requests.RequestException, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ProviderUnavailable(f"Prometheus at {self.url} did not list its rules: {error}") from error


def _instant_vector(result: Any, promql: str) -> list[dict[str, Any]]:
    """The series of an instant vector; UnusableAnswer for a scalar, a string or a range vector."""
    if not isinstance(result, list):
        raise UnusableAnswer(f"{promql!r} returned {type(result).__name__}, not an instant vector.")
    if not all(isinstance(series, dict) for series in result):
        raise UnusableAnswer(f"{promql!r} returned a scalar or a string, not an instant vector: wrap it "
                                  "so that it returns one series (for example with sum()).")
    if any("values" in series for series in result):
        raise UnusableAnswer(f"{promql!r} returned a range vector (a matrix), not an instant vector: "
                                  "drop the [range] selector outside the function.")
    return result


def _number(series: dict[str, Any], promql: str) -> float:
    try:
        _, text = series["value"]
        return float(text)
    except (KeyError, TypeError, ValueError) as error:
        raise UnusableAnswer(f"{promql!r} returned a sample that is not a number: {error}") from error


def instant_value(result: Any, promql: str) -> float | None:
    """The one number an instant query's result holds; None for an empty vector (no data).

    Anything else (a scalar, a string, a range vector, several series, a value that is not a number)
    means the query is not what analysis expects, and raises UnusableAnswer with the reason.
    NaN and infinities are returned as they are: judging them is the verdict's business.
    """
    series = _instant_vector(result, promql)
    if not series:
        return None
    if len(series) > 1:
        raise UnusableAnswer(f"{promql!r} returned {len(series)} series, not one: aggregate it "
                                  "(for example with sum()).")
    return _number(series[0], promql)


def values_by(result: Any, promql: str, label: str) -> dict[str, float]:
    """An instant vector's values keyed by ``label``; UnusableAnswer when a series lacks the label or two
    series share a value of it (the query must aggregate ``by (label)``)."""
    values: dict[str, float] = {}
    for series in _instant_vector(result, promql):
        key = (series.get("metric") or {}).get(label)
        if not isinstance(key, str) or key in values:
            raise UnusableAnswer(f"{promql!r} must return one series per {label}: aggregate it with "
                                 f"sum by ({label}) (...).")
        values[key] = _number(series, promql)
    return values
