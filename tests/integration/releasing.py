"""What release tests share: a fast policy, the Deployment it governs, and reading Releases back."""

from __future__ import annotations

import json

import kubernetes

from ballast.api.common import GROUP, VERSION
from ballast.api.vocabulary import label_value
from tests.harness import wait_for
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy, service_ownership

FAST_TIER = {"steps": [25, 50], "stepDuration": "4s", "minRequests": 20, "readyDeadline": "15s",
             "maxErrorRate": 0.08, "maxIncrease": 0.05, "failureLimit": 1, "inconclusiveLimit": 4,
             "onInconclusive": "Rollback", "errorLimit": 3, "onError": "Rollback", "approvalRequired": False,
             "maxConcurrent": 2}
GOOD = {"sim.ballast.dev/error-ratio": "0.005"}
BAD = {"sim.ballast.dev/error-ratio": "0.2"}


def govern(custom, apps, namespace, low_tier=None, **policy_spec) -> str:
    """Put ``namespace`` under a fast policy with a 3-replica Deployment 'shop' of the low tier; the policy's name."""
    name = f"fast-{namespace}"
    custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
        name, {"ballast.dev/test-ns": namespace},
        tiers={"low": low_tier or FAST_TIER, "critical": {**FAST_TIER, "approvalRequired": True},
               "medium": {**FAST_TIER, "maxConcurrent": 1}}, **policy_spec))
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                           service_ownership("shop", {"app": "shop"}, riskTier="low"))
    body = deployment("shop", {"app": "shop"}, replicas=3, annotations=OWNERSHIP_ANNOTATIONS,
                      template_annotations=GOOD)
    wait_for(lambda: created(apps, namespace, body), 30, "the Deployment was never admitted")
    wait_for(lambda: (apps.read_namespaced_deployment("shop", namespace).status.available_replicas or 0) == 3,
             60, "the Deployment never became available")
    # The pause webhook is live once a dry-run template change comes back paused.
    probe = {"spec": {"template": {"metadata": {"annotations": {"probe": "1"}}}}}
    wait_for(lambda: apps.patch_namespaced_deployment("shop", namespace, probe, dry_run="All").spec.paused, 30,
             "the pause webhook never took over template changes")
    return name


def created(apps, namespace, body) -> bool:
    try:
        apps.create_namespaced_deployment(namespace, body)
    except kubernetes.client.ApiException as error:
        if error.status == 409:
            return True
        if "failed calling webhook" in error.body or error.status == 503:
            return False  # the policy's webhooks are being set up
        raise
    return True


def change(apps, namespace, image, template_annotations, annotations=None, name="shop"):
    """What `kubectl apply` of a new version does: a new pod template."""
    patch = {"spec": {"template": {"metadata": {"annotations": template_annotations},
                                   "spec": {"containers": [{"name": "app", "image": image}]}}}}
    if annotations:
        patch["metadata"] = {"annotations": annotations}
    return apps.patch_namespaced_deployment(name, namespace, patch)


def releases(custom, namespace, deployment_name="shop"):
    selector = f"ballast.dev/deployment={label_value(deployment_name)}"
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "releases",
                                                 label_selector=selector)["items"]
    return sorted(items, key=lambda r: r["metadata"]["creationTimestamp"] + r["metadata"]["name"])


FINAL = ("Promoted", "RolledBack", "Superseded", "Failed")


def release_in(custom, namespace, phases, count=1, timeout=90, deployment_name="shop"):
    """The count-th release of the Deployment, once it is in one of ``phases``."""
    seen: list[dict] = []

    def reached():
        items = releases(custom, namespace, deployment_name)
        seen[:] = items[count - 1:count]
        if seen and (seen[0].get("status") or {}).get("phase") in phases:
            return seen[0]
        return None
    try:
        return wait_for(reached, timeout, f"release {count} of {deployment_name} never reached {phases}")
    except TimeoutError as error:
        raise TimeoutError(f"{error}; last seen: {json.dumps(seen[0].get('status') if seen else None)}") from None


def final_release(custom, namespace, count=1, timeout=90):
    return release_in(custom, namespace, FINAL, count, timeout)


def image_of(apps, namespace):
    return apps.read_namespaced_deployment("shop", namespace).spec.template.spec.containers[0].image


def canary_gone(apps, namespace):
    try:
        apps.read_namespaced_deployment("shop-canary", namespace)
    except kubernetes.client.ApiException as error:
        return error.status == 404
    return False
