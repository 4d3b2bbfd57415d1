"""Releases end to end: the real API server, the real operator, real Prometheus, simulated pods and users."""

from __future__ import annotations

import kubernetes
import pytest

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy, service_ownership

FAST_TIER = {"steps": [25, 50], "stepDuration": "4s", "minRequests": 20, "readyDeadline": "15s",
             "maxErrorRate": 0.08, "maxIncrease": 0.05, "failureLimit": 1, "inconclusiveLimit": 4,
             "onInconclusive": "Rollback", "approvalRequired": False, "maxConcurrent": 2}
GOOD = {"sim.ballast.dev/error-ratio": "0.005"}
BAD = {"sim.ballast.dev/error-ratio": "0.2"}


@pytest.fixture
def governed(custom, namespace, apps, operator):
    """A namespace under a fast policy, with a 3-replica Deployment 'shop' that the low tier owns."""
    name = f"fast-{namespace}"
    custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
        name, {"ballast.dev/test-ns": namespace}, tiers={"low": FAST_TIER, "critical": {**FAST_TIER,
                                                                                        "approvalRequired": True}}))
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                           service_ownership("shop", {"app": "shop"}, riskTier="low"))
    body = deployment("shop", {"app": "shop"}, replicas=3, annotations=OWNERSHIP_ANNOTATIONS,
                      template_annotations=GOOD)
    wait_for(lambda: _created(apps, namespace, body), 30, "the Deployment was never admitted")
    wait_for(lambda: (apps.read_namespaced_deployment("shop", namespace).status.available_replicas or 0) == 3,
             60, "the Deployment never became available")
    # The pause webhook is live once a dry-run template change comes back paused.
    probe = {"spec": {"template": {"metadata": {"annotations": {"probe": "1"}}}}}
    wait_for(lambda: apps.patch_namespaced_deployment("shop", namespace, probe, dry_run="All").spec.paused, 30,
             "the pause webhook never took over template changes")
    yield namespace
    custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


def _created(apps, namespace, body) -> bool:
    try:
        apps.create_namespaced_deployment(namespace, body)
    except kubernetes.client.ApiException as error:
        if error.status == 409:
            return True
        if "failed calling webhook" in error.body or error.status == 503:
            return False  # the policy's webhooks are being set up
        raise
    return True


def change(apps, namespace, image, template_annotations, annotations=None):
    """What `kubectl apply` of a new version does: a new pod template."""
    patch = {"spec": {"template": {"metadata": {"annotations": template_annotations},
                                   "spec": {"containers": [{"name": "app", "image": image}]}}}}
    if annotations:
        patch["metadata"] = {"annotations": annotations}
    return apps.patch_namespaced_deployment("shop", namespace, patch)


def releases(custom, namespace):
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "releases",
                                                 label_selector="ballast.dev/deployment=shop")["items"]
    return sorted(items, key=lambda r: r["metadata"]["creationTimestamp"] + r["metadata"]["name"])


def final_release(custom, namespace, count=1, timeout=90):
    def done():
        items = releases(custom, namespace)
        if len(items) >= count and (items[count - 1].get("status") or {}).get("phase") in (
                "Promoted", "RolledBack", "Superseded", "Failed"):
            return items[count - 1]
        return None
    return wait_for(done, timeout, f"release {count} never finished")


def image_of(apps, namespace):
    return apps.read_namespaced_deployment("shop", namespace).spec.template.spec.containers[0].image


def canary_gone(apps, namespace):
    try:
        apps.read_namespaced_deployment("shop-canary", namespace)
    except kubernetes.client.ApiException as error:
        return error.status == 404
    return False


def test_good_release_is_promoted(governed, apps, custom):
    namespace = governed
    paused = change(apps, namespace, "app:2.0", GOOD)
    assert paused.spec.paused is True  # the webhook held the Deployment; nothing rolled yet

    release = final_release(custom, namespace)
    status = release["status"]
    assert status["phase"] == "Promoted", status
    assert [a["verdict"] for a in status["analyses"]] == ["Pass", "Pass"]
    assert [a["weight"] for a in status["analyses"]] == [25, 50]
    assert all(a["canary"]["requests"] >= 20 for a in status["analyses"])
    spec = release["spec"]
    assert (spec["tier"], spec["service"], spec["owner"]) == ("low", "shop", "payments")
    assert spec["toImages"] == ["app:2.0"] and spec["fromImages"] == ["registry.example.com/app:1.0"]
    assert spec["changedBy"]["username"] == "admin"

    assert image_of(apps, namespace) == "app:2.0"
    current = apps.read_namespaced_deployment("shop", namespace)
    assert not current.spec.paused and "ballast.dev/pending-revision" not in (current.metadata.annotations or {})
    wait_for(lambda: canary_gone(apps, namespace), 30, "the canary was never deleted")


def test_bad_release_rolls_back_and_its_template_is_refused_until_retry(governed, apps, custom):
    namespace = governed
    change(apps, namespace, "app:2.0-bad", BAD)
    release = final_release(custom, namespace)
    status = release["status"]
    assert status["phase"] == "RolledBack", status
    assert status["reason"] == "AnalysisFailed"
    assert status["analyses"][0]["verdict"] == "Fail" and status["analyses"][0]["step"] == 0
    assert image_of(apps, namespace) == "registry.example.com/app:1.0"
    assert not apps.read_namespaced_deployment("shop", namespace).spec.paused
    wait_for(lambda: canary_gone(apps, namespace), 30, "the canary was never deleted")

    with pytest.raises(kubernetes.client.ApiException) as caught:
        change(apps, namespace, "app:2.0-bad", BAD)
    assert "which Ballast rolled back" in caught.value.body and "rule rolled-back-revision" in caught.value.body

    change(apps, namespace, "app:2.0-bad", BAD, annotations={"ballast.dev/retry": "with-fix-flag"})
    retried = wait_for(lambda: len(releases(custom, namespace)) == 2 and releases(custom, namespace)[1], 30,
                       "the retry never became a release")
    assert retried["metadata"]["name"].endswith("-2")
    assert retried["spec"]["toRevision"] == release["spec"]["toRevision"]


def test_crash_looping_release_rolls_back_with_canary_not_ready(governed, apps, custom):
    namespace = governed
    change(apps, namespace, "app:2.0-crash", {"sim.ballast.dev/never-ready": "true"})
    release = final_release(custom, namespace)
    assert release["status"]["phase"] == "RolledBack"
    assert release["status"]["reason"] == "CanaryNotReady"
    assert image_of(apps, namespace) == "registry.example.com/app:1.0"
