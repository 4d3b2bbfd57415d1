"""With replica split, the Release and `kubectl ballast status` show the weight reached, and warn when a step
cannot come within 5 points of the weight it asks for."""

from __future__ import annotations

import json

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.integration.kube import ballast, events_for
from tests.integration.releasing import FAST_TIER, GOOD, change, final_release, govern


def test_a_step_the_replica_split_cannot_reach_says_so(custom, namespace, apps, core, operator):
    # 3 stable replicas: 5 % is one canary pod of four, 25 % of the traffic; 50 % is three of six.
    name = govern(custom, apps, namespace, low_tier={**FAST_TIER, "steps": [5, 50]})
    try:
        change(apps, namespace, "app:2.0", GOOD)
        status = final_release(custom, namespace)["status"]
        assert status["phase"] == "Promoted", status
        release = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "releases")["items"][0]
        warnings = wait_for(lambda: [e for e in events_for(core, namespace, release["metadata"]["name"])
                                     if e.reason == "WeightNotReached"], 30, "no WeightNotReached event")
        assert warnings[0].type == "Warning"
        assert ("The canary gets 25% of the traffic, not the 5% requested: with 3 stable replica(s) the replica "
                "split (1 canary pod(s)) cannot come within 5 points; scale the Deployment to at least 9 "
                "replicas") in warnings[0].message
        assert [(a["weight"]) for a in status["analyses"]] == [5, 50]
        assert (status["reachedWeight"], status["weightWarning"]) == (100, "")  # promoted: all of it
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


def test_the_sre_sees_the_weight_reached_while_the_step_runs(custom, namespace, apps, operator, cluster):
    name = govern(custom, apps, namespace, low_tier={**FAST_TIER, "steps": [5, 50], "stepDuration": "60s"})
    try:
        change(apps, namespace, "app:2.0", GOOD)

        def running():
            items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "releases")["items"]
            status = (items[0].get("status") or {}) if items else {}
            return status if status.get("reachedWeight") else None
        status = wait_for(running, 60, "the release never recorded the weight it reached")
        assert (status["weight"], status["reachedWeight"]) == (5, 25)
        assert status["weightWarning"].startswith("The canary gets 25% of the traffic, not the 5% requested")
        shown = ballast(cluster.kubeconfig, "status", "-n", namespace, "-o", "json")
        assert shown.returncode == 0, shown.stderr
        rows = json.loads(shown.stdout)
        assert [(r["weight"], r["reached"]) for r in rows] == [(5, 25)]
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)
