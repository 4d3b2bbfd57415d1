"""Latency and custom checks end to end: real Prometheus scraping the simulated users' latency histogram.

The traffic simulator answers each pod's requests as slowly as its template says
(``sim.ballast.dev/latency-ms``, +- ``latency-jitter``), in the demo app's histogram, so a version can be
made slow. The policy's low tier judges p99 latency (canary against baseline, 100 ms allowed) and a
custom check of mean latency; the ServiceOwnership adds a check of its own. The good versions' analyses
print their p99s, and the slow version's rollback prints the step that caught it.
"""

from __future__ import annotations

import json

import pytest

from ballast.api.common import GROUP, VERSION
from tests.integration.kube import service_ownership
from tests.integration.releasing import FAST_TIER, GOOD, change, final_release, govern
from tests.integration.test_validation import create_policy, refusal, webhook  # noqa: F401 - fixture

MEAN_LATENCY = ('sum(rate(http_request_duration_seconds_sum{namespace="$namespace",pod=~"$pods"}[$window])) / '
                'sum(rate(http_request_duration_seconds_count{namespace="$namespace",pod=~"$pods"}[$window]))')
ANSWERED = 'sum(increase(http_requests_total{namespace="$namespace",pod=~"$pods",code="200"}[$window]))'
LATENCY_TIER = {**FAST_TIER, "stepDuration": "8s", "inconclusiveLimit": 6,
                "latency": {"quantile": 0.99, "maxIncrease": "100ms", "maxLatency": "2s", "minSamples": 100},
                "checks": [{"name": "mean-latency", "query": MEAN_LATENCY, "maxIncrease": 0.1}]}


def version(latency_ms: int, jitter: float = 0.5) -> dict[str, str]:
    return {**GOOD, "sim.ballast.dev/latency-ms": str(latency_ms), "sim.ballast.dev/latency-jitter": str(jitter)}


def checks_of(analysis: dict) -> dict[str, dict]:
    return {c["name"]: c for c in analysis.get("checks", [])}


@pytest.fixture
def judged(custom, namespace, apps, operator):
    """A namespace whose low tier judges latency and a custom check; its ServiceOwnership adds one more."""
    name = govern(custom, apps, namespace, low_tier=LATENCY_TIER)
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop", {
        "spec": {"checks": [{"name": "answered", "query": ANSWERED, "floor": 1}]}})
    yield namespace
    custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


def test_jittery_good_versions_are_promoted_and_a_200ms_slower_one_is_rolled_back_at_its_first_step(judged, apps,
                                                                                                   custom):
    namespace = judged
    # Good versions answering in 30 ms +-90 % (3 to 57 ms per request, drawn at random), canary and baseline
    # alike from the second release on (the first one's baseline answers at once).
    for count, image in enumerate(("app:2.0", "app:2.1", "app:2.2"), start=1):
        change(apps, namespace, image, version(30, jitter=0.9))
        status = final_release(custom, namespace, count=count, timeout=120)["status"]
        assert status["phase"] == "Promoted", json.dumps(status, indent=1)
        verdicts = [a for a in status["analyses"] if a["verdict"] == "Pass"]
        assert [a["weight"] for a in verdicts] == [25, 50]
        for analysis in verdicts:
            checks = checks_of(analysis)
            assert {n: (c["verdict"], c["source"]) for n, c in checks.items()} == {
                "latency": ("Pass", "policy"), "mean-latency": ("Pass", "policy"), "answered": ("Pass", "service")}
            assert checks["latency"]["samples"] >= 100 and checks["latency"]["canary"] <= 0.1
        print(f"good release {count}: p99 canary/baseline at each step",
              [(checks_of(a)["latency"]["canary"], checks_of(a)["latency"]["baseline"]) for a in verdicts])

    # +200 ms on every request of the new version (230 ms +-50 %).
    change(apps, namespace, "app:3.0-slow", version(230))
    status = final_release(custom, namespace, count=4, timeout=120)["status"]
    assert (status["phase"], status["reason"]) == ("RolledBack", "AnalysisFailed"), status
    failed = status["analyses"][-1]
    assert failed["step"] == 0 and failed["verdict"] == "Fail", failed  # the first step, which had enough requests
    latency = checks_of(failed)["latency"]
    assert latency["verdict"] == "Fail" and latency["canary"] - latency["baseline"] > 0.1, latency
    assert "p99 latency" in failed["message"] and "above the baseline's" in failed["message"], failed
    assert checks_of(failed)["mean-latency"]["verdict"] == "Fail"
    print(f"+200 ms caught at step {failed['step'] + 1} ({failed['weight']}%): p99 canary "
          f"{latency['canary'] * 1000:.0f} ms, baseline {latency['baseline'] * 1000:.0f} ms over "
          f"{latency['samples']:.0f} canary requests; analyses before it: {len(status['analyses']) - 1}")


def test_a_check_that_cannot_be_evaluated_is_an_error_never_a_pass(custom, namespace, apps, operator):
    tier = {**FAST_TIER, "errorLimit": 2, "checks": [{"name": "queue-depth", "ceiling": 10, "query":
            'sum(no_such_metric{namespace="$namespace",pod=~"$pods"})'}]}
    name = govern(custom, apps, namespace, low_tier=tier)
    try:
        change(apps, namespace, "app:2.0", GOOD)
        status = final_release(custom, namespace)["status"]
        assert (status["phase"], status["reason"]) == ("RolledBack", "AnalysisError"), status
        assert [a["verdict"] for a in status["analyses"]] == ["Error", "Error"]
        check = checks_of(status["analyses"][-1])["queue-depth"]
        assert check["verdict"] == "Error" and "returned no data for the canary" in check["message"]
        assert "canary" not in check  # no value was measured, none is recorded
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


@pytest.mark.parametrize(("tier", "expected"), [
    ({"checks": [{"name": "q", "query": "sum(x)"}]}, "check 'q' sets no limit: set ceiling, floor or maxIncrease"),
    ({"checks": [{"name": "q", "query": "sum(x{pod=~\"$pod\"})", "ceiling": 1}]},
     "the query uses $pod: the templates know only $namespace, $pods, $window"),
    ({"latency": {"quantile": 0.99, "maxIncrease": "100ms", "minSamples": 20}},
     "latency minSamples 20 is too few to estimate the p99: raise it to at least 100"),
])
def test_admission_refuses_malformed_checks_with_the_fix(webhook, custom, namespace, tier, expected):  # noqa: F811
    name = f"bad-{namespace}"
    message = refusal(lambda: create_policy(custom, name, tiers={"high": tier}))
    assert f"ReleasePolicy {name} is invalid: spec.tiers.high" in message
    assert expected in message


def test_admission_refuses_a_malformed_check_of_a_service_with_the_fix(webhook, custom, namespace):  # noqa: F811
    body = service_ownership("checkout", {"app": "checkout"}, checks=[
        {"name": "auth", "query": "sum(x)", "maxIncrease": 0.1}])
    message = refusal(lambda: custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                                                    body, dry_run="All"))
    assert f"ServiceOwnership {namespace}/checkout is invalid: spec.checks.0: " in message
    assert ("check 'auth' compares with the baseline (maxIncrease) but its query does not select pods with $pods: "
            "add pod=~\"$pods\" so each side measures its own pods") in message
