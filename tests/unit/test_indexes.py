"""What the indexes keep of an object: what the rules and passes read, not whole bodies."""

from __future__ import annotations

import kopf

from ballast.controllers.indexes import releases_by_namespace, workloads_by_namespace
from ballast.policy.workloads import WorkloadSummary

DEPLOYMENTS = kopf.Resource("apps", "v1", "deployments", kind="Deployment")
OWNED = {"ballast.dev/owner": "payments", "ballast.dev/alerts": "CheckoutDown",
         "ballast.dev/runbook": "https://runbooks.example.com/checkout", "team.example.com/cost-centre": "42"}


def deployment(annotations: dict[str, str]) -> kopf.Body:
    return kopf.Body({"apiVersion": "apps/v1", "kind": "Deployment",
                      "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                                   "annotations": annotations, "ownerReferences": [{"uid": "u-1"}]},
                      "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "app:1"}]}}},
                      "status": {"readyReplicas": 3}})


def test_a_workload_is_kept_as_its_summary_without_the_applied_manifest():
    applied = {**OWNED, "kubectl.kubernetes.io/last-applied-configuration": '{"kind": "Deployment"' + " " * 4000 + "}"}
    kept = workloads_by_namespace(body=deployment(applied), namespace="shop", resource=DEPLOYMENTS)
    assert kept == {"shop": WorkloadSummary(namespace="shop", name="web", labels={"app": "web"}, annotations=OWNED,
                                            kind="Deployment", owner_uids=frozenset({"u-1"}))}


def test_a_workload_without_unread_annotations_keeps_every_annotation():
    kept = workloads_by_namespace(body=deployment(OWNED), namespace="shop", resource=DEPLOYMENTS)
    assert kept["shop"].annotations == OWNED


def test_a_release_keeps_only_the_status_fields_read_from_the_index():
    body = kopf.Body({"apiVersion": "ballast.dev/v1alpha1", "kind": "Release",
                      "metadata": {"name": "web-1", "namespace": "shop", "uid": "r-1", "labels": {"a": "b"},
                                   "ownerReferences": [{"uid": "u-1"}], "creationTimestamp": "2026-12-05T11:00:00Z",
                                   "managedFields": [{"manager": "ballast"}]},
                      "spec": {"deployment": "web"},
                      "status": {"phase": "Promoted", "finishedAt": "2026-12-05T11:05:00Z",
                                 "analyses": [{"verdict": "Pass"}] * 30, "conditions": [{"type": "Succeeded"}]}})
    kept = releases_by_namespace(body=body, namespace="shop")["shop"]
    assert kept["status"] == {"phase": "Promoted", "finishedAt": "2026-12-05T11:05:00Z"}
    assert "managedFields" not in kept["metadata"] and kept["metadata"]["ownerReferences"] == [{"uid": "u-1"}]
