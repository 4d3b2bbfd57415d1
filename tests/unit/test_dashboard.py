"""The Grafana dashboard queries only metrics the operator exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import ballast.instruments  # noqa: F401  (registers the operator's metrics)

DASHBOARD = Path(__file__).resolve().parents[2] / "charts" / "ballast" / "dashboards" / "ballast.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def exported_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("ballast_"):
            names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def test_every_queried_metric_is_exported():
    exprs = [t["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for t in panel["targets"]]
    queried = {name for expr in exprs for name in re.findall(r"\bballast_[a-z_]+", expr)}
    assert queried, "the dashboard queries no Ballast metric"
    assert queried <= exported_names(), f"not exported by the operator: {sorted(queried - exported_names())}"


def test_every_exported_metric_family_is_on_the_dashboard():
    text = DASHBOARD.read_text()
    families = {f.name for f in REGISTRY.collect() if f.name.startswith("ballast_")}
    missing = {f for f in families if f not in text}
    assert not missing, f"metrics no panel shows: {sorted(missing)}"
