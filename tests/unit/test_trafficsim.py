"""The traffic simulator's latency histogram: set per pod, shaped like the demo app's, scraped like it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from prometheus_client import generate_latest

from tests.harness.trafficsim import LATENCY_BUCKETS, TrafficSimulator


def pod(name: str, **annotations: str) -> dict:
    return {"metadata": {"namespace": "ns", "name": name, "annotations": annotations},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def buckets(sim: TrafficSimulator, name: str) -> dict[str, float]:
    text = generate_latest(sim.registry).decode()
    pattern = rf'http_request_duration_seconds_bucket\{{le="([^"]+)",namespace="ns",pod="{name}"\}} (\S+)'
    return {le: float(count) for le, count in re.findall(pattern, text)}


def test_each_pod_answers_as_slowly_as_its_annotations_say():
    sim = TrafficSimulator(default_rps=100, seed=1)
    sim.handle("ADDED", pod("fast", **{"sim.ballast.dev/latency-ms": "40"}))
    sim.handle("ADDED", pod("slow", **{"sim.ballast.dev/latency-ms": "240", "sim.ballast.dev/latency-jitter": "0"}))
    sim.tick(10.0)
    fast, slow = buckets(sim, "fast"), buckets(sim, "slow")
    assert fast["+Inf"] == slow["+Inf"] == 1000
    # 40 ms +-50 %: between 20 and 60 ms, so nothing at or below 10 ms and everything by 100 ms.
    assert fast["0.01"] == 0 and 0 < fast["0.025"] < fast["0.05"] < 1000 and fast["0.1"] == 1000
    # 240 ms exactly: every request in the (0.1, 0.25] bucket.
    assert slow["0.1"] == 0 and slow["0.25"] == 1000


def test_buckets_match_the_demo_apps():
    """The same policy judges simulated and real pods. The demo app gains its histogram in another branch;
    once it has one, its buckets must be these."""
    source = (Path(__file__).parents[2] / "deploy/kind/demo-app/app.py").read_text()
    match = re.search(r"^BUCKETS = (\(.*\))$", source, re.M)
    if match:
        assert ast.literal_eval(match.group(1)) == LATENCY_BUCKETS
