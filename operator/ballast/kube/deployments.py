"""The Deployment writes of the release engine, and the pure functions that shape them.

Reads use the raw JSON the API server sends (not the client's models), so a pod template hashes the
same here as in the admission webhook. Every write carries the resourceVersion it was computed from.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kubernetes

from ballast.policy.admission import ROLLED_BACK_ANNOTATION, created_by_operator
from ballast.policy.workloads import CANARY_TRACK, TRACK_LABEL

PENDING_ANNOTATION = "ballast.dev/pending-revision"
"""Set by the mutating webhook on a paused Deployment whose template changed; removed when its release ends."""
CHANGED_BY_ANNOTATION = "ballast.dev/changed-by"
"""JSON of the identity that made the pending change, captured at admission."""
PENDING_EMERGENCY_ANNOTATION = "ballast.dev/pending-emergency"
"""The break-glass reason of the pending change, captured at admission only when that change set it."""
PENDING_TIER_ANNOTATION = "ballast.dev/pending-tier"
"""The tier the pending change was judged under at admission: the stricter of the workload's before and after it."""
BOOKKEEPING_ANNOTATIONS = frozenset({PENDING_ANNOTATION, CHANGED_BY_ANNOTATION, PENDING_EMERGENCY_ANNOTATION,
                                     PENDING_TIER_ANNOTATION})
"""Dropped from the Deployment when its release ends."""
WEBHOOK_ONLY_ANNOTATIONS = BOOKKEEPING_ANNOTATIONS | {ROLLED_BACK_ANNOTATION}
"""Written only by the mutating webhook and the operator: people's writes to them are undone."""
RELEASE_ANNOTATION = "ballast.dev/release"
"""On a canary Deployment: the Release it belongs to."""
ROLLED_BACK_HISTORY = 10
"""Rolled-back revisions remembered per Deployment."""
POD_TEMPLATE_HASH = "pod-template-hash"


def canary_name(deployment: str) -> str:
    return f"{deployment}-canary"


def is_canary(body: Mapping[str, Any]) -> bool:
    return ((body.get("metadata") or {}).get("labels") or {}).get(TRACK_LABEL) == CANARY_TRACK


def release_canaries(releases: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The UID of each Release the operator created -> the name of the canary it runs."""
    return {r["metadata"]["uid"]: canary_name(r["spec"]["deployment"]) for r in releases
            if created_by_operator(r, None) and r["metadata"].get("uid") and (r.get("spec") or {}).get("deployment")}


def canary_body(deployment: Mapping[str, Any], release: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    """A Deployment running the new template beside the stable one, selectable only by the canary track.

    It carries the stable Deployment's labels and annotations (so the same ServiceOwnership and admission
    rules recognise it) minus Ballast's bookkeeping, and is owned by the Release, so deleting the
    Release (or its Deployment) garbage-collects it.
    """
    metadata = deployment["metadata"]
    spec = deployment["spec"]
    labels = {**(metadata.get("labels") or {}), TRACK_LABEL: CANARY_TRACK}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                   if not k.startswith("ballast.dev/") or k in _OWNERSHIP_KEYS}
    annotations[RELEASE_ANNOTATION] = release["metadata"]["name"]
    template = copy.deepcopy(spec["template"])
    template.setdefault("metadata", {}).setdefault("labels", {})[TRACK_LABEL] = CANARY_TRACK
    selector = copy.deepcopy(spec["selector"])
    selector.setdefault("matchLabels", {})[TRACK_LABEL] = CANARY_TRACK
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": canary_name(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": release["apiVersion"], "kind": release["kind"], "name": release["metadata"]["name"],
                "uid": release["metadata"]["uid"], "blockOwnerDeletion": False,
            }],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template,
                 "minReadySeconds": spec.get("minReadySeconds", 0)},
    }


_OWNERSHIP_KEYS = frozenset({"ballast.dev/owner", "ballast.dev/alerts", "ballast.dev/runbook"})


@dataclass(frozen=True)
class StableRevision:
    """What runs before the change: the newest ReplicaSet's template and its pod-template-hash."""

    template: dict[str, Any]
    pod_template_hash: str


def stable_revision(replica_sets: list[Mapping[str, Any]], deployment_uid: str) -> StableRevision | None:
    """The Deployment's newest ReplicaSet, which a paused Deployment keeps as its stable revision.

    A paused Deployment whose template changed creates no ReplicaSet, so its newest one is what runs
    (as ``kubectl rollout undo`` assumes).
    """
    owned = [
        rs for rs in replica_sets
        if any(ref.get("uid") == deployment_uid for ref in (rs["metadata"].get("ownerReferences") or []))
    ]
    if not owned:
        return None
    newest = max(owned, key=lambda rs: int((rs["metadata"].get("annotations") or {})
                                           .get("deployment.kubernetes.io/revision", "0")))
    template = copy.deepcopy(newest["spec"]["template"])
    labels = template.get("metadata", {}).get("labels") or {}
    pod_template_hash = labels.pop(POD_TEMPLATE_HASH, "")
    return StableRevision(template, pod_template_hash)


def rolled_back_record(annotations: Mapping[str, str], revision: str, when: datetime) -> str:
    """The rolled-back annotation with ``revision`` added, keeping the most recent entries."""
    try:
        record = json.loads(annotations.get(ROLLED_BACK_ANNOTATION) or "{}")
        if not isinstance(record, dict):
            record = {}
    except ValueError:
        record = {}
    record[revision] = when.isoformat()
    newest = sorted(record.items(), key=lambda item: str(item[1]))[-ROLLED_BACK_HISTORY:]
    return json.dumps(dict(newest), sort_keys=True)


def images(template: Mapping[str, Any] | None) -> list[str]:
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    return [c.get("image", "") for c in containers]


# -- API calls (blocking) --------------------------------------------------------------------------------

def read_raw(namespace: str, name: str) -> dict[str, Any] | None:
    """A Deployment as the API server's JSON, or None when it does not exist."""
    api = kubernetes.client.AppsV1Api()
    try:
        response = api.read_namespaced_deployment(name, namespace, _preload_content=False)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return json.loads(response.data)


def read_stable_revision(deployment: Mapping[str, Any]) -> StableRevision | None:
    """The stable revision of a Deployment, from its ReplicaSets."""
    api = kubernetes.client.AppsV1Api()
    selector = deployment["spec"]["selector"].get("matchLabels") or {}
    label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
    response = api.list_namespaced_replica_set(deployment["metadata"]["namespace"], label_selector=label_selector,
                                               _preload_content=False)
    return stable_revision(json.loads(response.data)["items"], deployment["metadata"]["uid"])


def ensure_canary(body: dict[str, Any]) -> None:
    """Create the canary, or bring an existing one to the body's replicas and template."""
    api = kubernetes.client.AppsV1Api()
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    current = read_raw(namespace, name)
    if current is None:
        api.create_namespaced_deployment(namespace, body)
        return
    if current["spec"].get("replicas") == body["spec"]["replicas"] and \
            current["spec"]["template"] == body["spec"]["template"]:
        return
    patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
             "spec": {"replicas": body["spec"]["replicas"], "template": body["spec"]["template"]}}
    api.patch_namespaced_deployment(name, namespace, patch)


def delete(namespace: str, name: str) -> None:
    api = kubernetes.client.AppsV1Api()
    try:
        api.delete_namespaced_deployment(name, namespace, propagation_policy="Background")
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise


def replace_fields(namespace: str, name: str, resource_version: str, fields: Mapping[str, Any]) -> None:
    """Set whole fields (JSON pointer -> value) of a Deployment, only if it is still at ``resource_version``.

    A JSON patch, not a merge: a restored pod template must come back exactly, without keys the bad
    revision added. Setting resourceVersion makes the API server refuse (409) a stale write.
    """
    operations = [{"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}]
    operations += [{"op": "add", "path": path, "value": value} for path, value in fields.items()]
    kubernetes.client.AppsV1Api().patch_namespaced_deployment(name, namespace, operations)
