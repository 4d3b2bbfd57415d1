"""The operator's status reconciliation, against the real API server with the real operator process."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.integration.kube import (
    OWNERSHIP_ANNOTATIONS,
    condition,
    deployment,
    events_for,
    release_policy,
    service_ownership,
)


def read_so(custom, namespace, name):
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", name)


def read_policy(custom, name):
    return custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


def test_service_ownership_tracks_deployments(operator, custom, apps, core, namespace):
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "serviceownerships", service_ownership("checkout", {"app": "checkout"}))

    def status_with(workloads, ready):
        def check():
            so = read_so(custom, namespace, "checkout")
            status = so.get("status") or {}
            ready_condition = condition(so, "Ready")
            if status.get("workloads") == workloads and ready_condition and ready_condition["status"] == ready:
                return so
            return None
        return check

    so = wait_for(status_with([], "False"), 30, "status never reported no workloads")
    assert condition(so, "Ready")["reason"] == "NoWorkloads"
    assert so["status"]["observedGeneration"] == so["metadata"]["generation"]

    apps.create_namespaced_deployment(namespace, deployment("checkout", {"app": "checkout"},
                                                            annotations=OWNERSHIP_ANNOTATIONS))
    apps.create_namespaced_deployment(namespace, deployment("cart", {"app": "cart"}))
    so = wait_for(status_with(["checkout"], "True"), 30, "status never picked up the new Deployment")
    assert so["status"]["workloadCount"] == 1
    assert condition(so, "OwnershipComplete")["status"] == "True"

    apps.create_namespaced_deployment(namespace, deployment("checkout-worker", {"app": "checkout"}))
    so = wait_for(status_with(["checkout", "checkout-worker"], "False"), 30,
                  "status never picked up the second Deployment")
    complete = condition(so, "OwnershipComplete")
    assert complete["status"] == "False"
    assert "Deployment checkout-worker is missing annotation ballast.dev/owner" in complete["message"]

    apps.delete_namespaced_deployment("checkout-worker", namespace)
    apps.delete_namespaced_deployment("checkout", namespace)
    wait_for(status_with([], "False"), 30, "status never dropped the deleted Deployments")

    events = events_for(core, namespace, "checkout")
    reasons = {e.reason for e in events if e.involved_object.kind == "ServiceOwnership"}
    assert {"NoWorkloads", "Ready", "Incomplete", "Complete"} <= reasons


def test_release_policy_reports_governed_namespaces_overlaps_and_freezes(operator, custom, core, namespace):
    now = datetime.now(UTC).replace(microsecond=0)
    broad, narrow, ghost = f"broad-{namespace}", f"narrow-{namespace}", f"ghost-{namespace}"
    selector = {"ballast.dev/test-ns": namespace}
    freeze = {"name": "launch", "start": (now - timedelta(hours=1)).isoformat(),
              "end": (now + timedelta(hours=1)).isoformat(), "tiers": ["critical"]}
    created = []
    try:
        for name, spec in [
            (broad, release_policy(broad, selector, freezeWindows=[freeze])),
            (ghost, release_policy(ghost, {"ballast.dev/test-ns": "nowhere"})),
        ]:
            custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", spec)
            created.append(name)

        def ready(name, status):
            def check():
                policy = read_policy(custom, name)
                ready_condition = condition(policy, "Ready")
                return policy if ready_condition and ready_condition["status"] == status else None
            return check

        policy = wait_for(ready(broad, "True"), 30, "policy never became Ready")
        assert policy["status"]["governedNamespaces"] == [namespace]
        assert [f["name"] for f in policy["status"]["activeFreezes"]] == ["launch"]
        assert policy["status"]["frozenTiers"] == "critical"
        assert condition(policy, "Overlapping")["status"] == "False"

        ghost_policy = wait_for(ready(ghost, "False"), 30, "empty-selector policy never reported")
        assert condition(ghost_policy, "NamespacesMatched")["reason"] == "SelectorMatchesNothing"

        # A more specific policy over the same namespace wins it; both say so.
        more_specific = release_policy(narrow, {**selector, "kubernetes.io/metadata.name-free": "x"})
        more_specific["spec"]["namespaceSelector"]["matchExpressions"] = [
            {"key": "ballast.dev/test-ns", "operator": "Exists"}]
        more_specific["spec"]["namespaceSelector"]["matchLabels"] = selector
        custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", more_specific)
        created.append(narrow)

        def overlapping():
            policy = read_policy(custom, broad)
            overlap = condition(policy, "Overlapping")
            return policy if overlap and overlap["status"] == "True" else None
        policy = wait_for(overlapping, 30, "overlap never reported")
        assert f"{narrow} wins" in condition(policy, "Overlapping")["message"]
        assert policy["status"]["governedNamespaces"] == []
        assert wait_for(lambda: read_policy(custom, narrow).get("status", {}).get("governedNamespaces") == [namespace],
                        30, "the more specific policy never took the namespace")

        # Relabelling the namespace away hands it back to nobody.
        core.patch_namespace(namespace, {"metadata": {"labels": {"ballast.dev/test-ns": None}}})
        wait_for(ready(narrow, "False"), 30, "policy never noticed the namespace left")

        # Events are posted in the background (kopf queues them), so the status can be ahead of its event.
        def ghost_warned() -> bool:
            return any(e.involved_object.name == ghost and e.type == "Warning" and e.reason == "SelectorMatchesNothing"
                       for e in core.list_namespaced_event("default").items)
        wait_for(ghost_warned, 30, "the empty-selector policy never got its SelectorMatchesNothing warning")
    finally:
        for name in created:
            custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


def test_policy_status_stays_small_and_one_bad_entry_stops_no_policy(operator, custom, apps, namespace):
    """Seven workloads with 250 KiB annotations once made a 1.6 MiB status that etcd refused, and one
    unreadable freezeRefusals entry stopped the status pass of every policy."""
    first, last = f"a-bad-entry-{namespace}", f"z-audit-{namespace}"
    created = []
    try:
        custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies",
                                            release_policy(first, {"ballast.dev/test-ns": "nowhere"}))
        created.append(first)
        wait_for(lambda: condition(read_policy(custom, first), "Ready"), 30, "the first policy never got a status")
        # Year 0 passes the schema's date-time format (Go's) but no Python datetime holds it: an entry written
        # by hand (or by another version) into the status of the policy sorted first.
        bad = {"at": "0000-01-01T00:00:00Z", "kind": "Deployment", "namespace": "shop", "name": "naive",
               "revision": "r1", "tier": "critical", "window": "weekend"}
        custom.patch_cluster_custom_object_status(GROUP, VERSION, "releasepolicies", first,
                                                  {"status": {"freezeRefusals": [bad]}})
        assert read_policy(custom, first)["status"]["freezeRefusals"] == [bad]

        custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
            last, {"ballast.dev/test-ns": namespace}, admission={"mode": "Audit"}))
        created.append(last)
        huge = {**OWNERSHIP_ANNOTATIONS, "ballast.dev/runbook": "runbooks/" + "x" * 250_000}
        for i in range(7):
            apps.create_namespaced_deployment(namespace, deployment(f"svc-{i}", {"app": f"svc-{i}"},
                                                                    annotations=huge))

        def audited():
            status = read_policy(custom, last).get("status") or {}
            return status if status.get("violationCount") == 7 else None
        status = wait_for(audited, 60, "the audit policy's status never listed the seven violations")
        assert len(status["violations"]) == 7
        assert len(json.dumps(status).encode()) < 100 * 1024
        assert all("not a URL" in v["message"] and len(v["message"]) < 1024 for v in status["violations"])

        wait_for(lambda: read_policy(custom, first)["status"].get("freezeRefusals") == [], 30,
                 "the unreadable entry was never dropped from the first policy's status")
    finally:
        for name in created:
            custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)
