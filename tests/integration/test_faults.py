"""Faults of the metrics provider, on the real operator, API server and Prometheus.

A hung Prometheus (SIGSTOP: it accepts connections and never answers) must not delay an abort; a slow
one, one that answers 500s or garbage, and one that answers the wrong shape or impossible numbers give
analyses in Error, never a Pass, and the tier's ``onError`` decides (here: roll back after two).
"""

from __future__ import annotations

import time

import kubernetes
import pytest
import requests

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.harness.faultproxy import FaultProxy
from tests.integration.releasing import (
    FAST_TIER,
    GOOD,
    canary_gone,
    change,
    final_release,
    govern,
    image_of,
    release_in,
)

STABLE_IMAGE = "registry.example.com/app:1.0"


def _metric(operator, name: str) -> float:
    for line in requests.get(operator.metrics_url, timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_abort_acts_at_once_while_prometheus_hangs(custom, apps, namespace, operator, local_cluster):
    policy = govern(custom, apps, namespace, low_tier={**FAST_TIER, "stepDuration": "60s"})
    try:
        change(apps, namespace, "app:2.0", GOOD)
        release = release_in(custom, namespace, ("Progressing",))
        wait_for(lambda: (release_in(custom, namespace, ("Progressing",))["status"].get("canaryReadyAt")), 30,
                 "the canary never became ready")
        with local_cluster.paused("prometheus"):
            # Looks at the canary now hang on the stopped Prometheus (bounded by the client deadline).
            wait_for(lambda: _metric(operator, "ballast_analyses_in_flight") >= 1, 10,
                     "no look at the canary was waiting on Prometheus")
            started = time.monotonic()
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "releases", release["metadata"]["name"],
                                                  {"metadata": {"annotations": {"ballast.dev/abort": "pager"}}})
            wait_for(lambda: canary_gone(apps, namespace) and image_of(apps, namespace) == STABLE_IMAGE, 10,
                     "the abort was not acted on while Prometheus hung", interval=0.05)
            reaction = time.monotonic() - started
        print(f"abort acted on in {reaction:.2f} s while Prometheus hung")
        # The bar is 1 s (benchmarks measure it); a loaded CI machine gets slack, a stalled engine does not.
        assert reaction < 3.0
        done = final_release(custom, namespace)
        assert (done["status"]["phase"], done["status"]["reason"]) == ("RolledBack", "Aborted")
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy)


@pytest.mark.parametrize(("fault", "message"), [
    ("slow", "Read timed out"),
    ("error", "HTTP Status Code 500"),
    ("garbage", "did not answer"),
    ("matrix", "range vector"),
    ("nan", "unusable: requests is nan"),
    ("negative", "unusable: requests is negative"),
])
def test_a_misbehaving_provider_gives_errors_never_a_pass(custom, apps, namespace, operator, cluster, fault,
                                                          message):
    with FaultProxy(cluster.prometheus_url, slow_seconds=8) as proxy:
        policy = govern(custom, apps, namespace, low_tier={**FAST_TIER, "errorLimit": 2},
                        prometheus={"url": proxy.url})
        try:
            proxy.fault = fault
            change(apps, namespace, "app:2.0", GOOD)
            release = final_release(custom, namespace, timeout=120)
        finally:
            custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy)
    status = release["status"]
    assert (status["phase"], status["reason"]) == ("RolledBack", "AnalysisError"), status
    verdicts = [a["verdict"] for a in status["analyses"]]
    assert verdicts == ["Error", "Error"], status["analyses"]
    # Each says what went wrong, also when the provider is not asked for a while (its circuit breaker
    # is open after repeated failures, which is the point of the breaker).
    assert all(message in a["message"] for a in status["analyses"]), status["analyses"]
    assert status["analysisCounts"] == {"Error": 2}
    assert image_of(apps, namespace) == STABLE_IMAGE


def test_a_release_survives_an_api_server_restart_and_a_paused_etcd(governed, apps, custom, local_cluster):
    """Nothing lost, nothing done twice: every step passes once, no window is recorded twice."""
    namespace = governed
    change(apps, namespace, "app:2.0", GOOD)
    wait_for(lambda: release_in(custom, namespace, ("Progressing",))["status"].get("canaryReadyAt"), 30,
             "the canary never became ready")
    local_cluster.restart("kube-apiserver")
    with local_cluster.paused("etcd"):
        time.sleep(5)  # the fault itself: the API server cannot read or write for 5 s
    release = final_release(custom, namespace, timeout=120)
    status = release["status"]
    assert status["phase"] == "Promoted", status
    analyses = status["analyses"]
    assert [(a["step"], a["verdict"]) for a in analyses if a["verdict"] == "Pass"] == [(0, "Pass"), (1, "Pass")]
    assert "Fail" not in {a["verdict"] for a in analyses}
    assert len({a["windowStart"] for a in analyses}) == len(analyses), analyses
    assert image_of(apps, namespace) == "app:2.0"


@pytest.mark.parametrize(("phase", "reason", "outcome", "image"), [
    ("RollingBack", "AnalysisFailed", "RolledBack", STABLE_IMAGE),
    ("Promoting", "AnalysisPassed", "Promoted", "app:2.0"),
])
def test_an_operator_killed_between_its_decision_and_its_actions_finishes_them(
        governed, apps, custom, operator, phase, reason, outcome, image):
    """The status is written before the actions: an operator that died in between resumes from it."""
    namespace = governed
    change(apps, namespace, "app:2.0", GOOD)
    release = release_in(custom, namespace, ("Progressing",))
    wait_for(lambda: not canary_gone(apps, namespace), 30, "the canary never appeared")
    operator.kill()
    try:
        # What the operator wrote just before it was killed: the decision, none of its actions. Only the
        # operator may write a Release's status, and its webhook is down with it: the test lifts that
        # guard for this one write (the restarted operator puts its webhook configuration back).
        registration = kubernetes.client.AdmissionregistrationV1Api(apps.api_client)
        configuration = registration.read_validating_webhook_configuration("ballast.dev")
        configuration.webhooks = [w for w in configuration.webhooks if not w.name.startswith("releases.")]
        registration.replace_validating_webhook_configuration("ballast.dev", configuration)
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "releases", release["metadata"]["name"],
            {"status": {"phase": phase, "reason": reason, "message": "decided just before the operator died"}})
        assert apps.read_namespaced_deployment("shop", namespace).spec.paused is True
    finally:
        operator.start()
    done = final_release(custom, namespace)
    assert (done["status"]["phase"], done["status"]["reason"]) == (outcome, "Promoted" if outcome == "Promoted"
                                                                   else reason), done["status"]
    assert image_of(apps, namespace) == image
    assert apps.read_namespaced_deployment("shop", namespace).spec.paused is not True
    wait_for(lambda: canary_gone(apps, namespace), 30, "the canary was never deleted")


def test_counters_that_start_again_from_zero_give_correct_figures(governed, apps, custom, local_cluster):
    """A pod's counters reset when it restarts; the default queries use increase(), which accounts for that:
    no negative or impossible figure, no Error, and the release is promoted on its real traffic."""
    namespace = governed
    change(apps, namespace, "app:2.0", GOOD)
    wait_for(lambda: release_in(custom, namespace, ("Progressing",))["status"].get("canaryReadyAt"), 30,
             "the canary never became ready")
    local_cluster.restart("trafficsim")  # every simulated pod's counters start again from zero
    release = final_release(custom, namespace, timeout=120)
    status = release["status"]
    assert status["phase"] == "Promoted", status
    for analysis in status["analyses"]:
        assert analysis["verdict"] in ("Pass", "Inconclusive"), analysis
        for side in ("canary", "baseline"):
            figures = analysis[side]
            assert figures.get("requests") is None or figures["requests"] >= 0, analysis
            assert figures.get("errors") is None or 0 <= figures["errors"] <= figures["requests"], analysis
