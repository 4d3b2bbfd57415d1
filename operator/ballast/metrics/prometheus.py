"""Prometheus as a metric provider, through prometheus-api-client."""

from __future__ import annotations

import math

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from ballast.metrics.provider import ProviderUnavailable


class PrometheusProvider:
    """Instant queries and alert rules from one Prometheus server."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = PrometheusConnect(url=self.url, disable_ssl=False)

    def query(self, promql: str) -> float | None:
        try:
            result = self._client.custom_query(promql, params={"timeout": f"{max(1, int(self.timeout))}s"})
        except (PrometheusApiClientException, requests.RequestException) as error:
            raise ProviderUnavailable(f"Prometheus at {self.url} did not answer {promql!r}: {error}") from error
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value

    def alert_rule_names(self) -> frozenset[str]:
        try:
            response = requests.get(f"{self.url}/api/v1/rules", params={"type": "alert"}, timeout=self.timeout)
            response.raise_for_status()
            groups = response.json()["data"]["groups"]
        except (requests.RequestException, ValueError, KeyError) as error:
            raise ProviderUnavailable(f"Prometheus at {self.url} did not list its rules: {error}") from error
        return frozenset(
            rule["name"] for group in groups for rule in group.get("rules", []) if rule.get("type") == "alerting"
        )
