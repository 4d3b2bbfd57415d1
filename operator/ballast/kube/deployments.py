"""The Deployment writes of the release engine, and the pure functions that shape them.

Reads use the raw JSON the API server sends (not the client's models), so a pod template hashes the
same here as in the admission webhook. Every write carries the resourceVersion it was computed from.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes

from ballast.api.release import created_by_operator
from ballast.api.revisions import template_hash
from ballast.api.vocabulary import CANARY_TRACK, OWNERSHIP_ANNOTATIONS, PREFIX, RELEASE_ANNOTATION, TRACK_LABEL
from ballast.kube.client import api_client

POD_TEMPLATE_HASH = "pod-template-hash"


MAX_GENERATED_PREFIX = 58
"""Kubernetes cuts a generateName prefix to 58 characters before adding 5 random ones (names.go)."""


class CanaryNameTaken(Exception):
    """A Deployment with the canary's name exists and does not belong to the release."""


def canary_name(deployment: str) -> str:
    return f"{deployment}-canary"


def is_canary(body: Mapping[str, Any]) -> bool:
    return ((body.get("metadata") or {}).get("labels") or {}).get(TRACK_LABEL) == CANARY_TRACK


def owned_by(body: Mapping[str, Any] | None, owner_uid: str) -> bool:
    """Whether ``owner_uid`` is among the object's owner references: the only proof of whose it is."""
    refs = ((body or {}).get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner_uid for ref in refs)


def name_taken_message(namespace: str, deployment: str, release: str) -> str:
    return (f"Deployment {namespace}/{canary_name(deployment)} exists and is not the canary of Release {release}: "
            f"Ballast needs that name for the canary of {deployment}. Rename or delete that Deployment; the "
            "release waits until then.")


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
                   if not k.startswith(f"{PREFIX}/") or k in OWNERSHIP_ANNOTATIONS}
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




@dataclass(frozen=True)
class StableRevision:
    """What runs before the change: the newest ReplicaSet's template and its pod-template-hash."""

    template: dict[str, Any]
    pod_template_hash: str


def stable_revision(replica_sets: list[Mapping[str, Any]], deployment_uid: str,
                    excluding: str | None = None) -> StableRevision | None:
    """The Deployment's newest ReplicaSet not running revision ``excluding``: what ran before the change.

    A paused Deployment whose template changed creates no ReplicaSet, so its newest one is what runs
    (as ``kubectl rollout undo`` assumes). Once a promotion has un-paused it, the newest one is the new
    revision's, hence ``excluding``.
    """
    candidates = []
    for rs in replica_sets:
        if not owned_by(rs, deployment_uid):
            continue
        template = copy.deepcopy(rs["spec"]["template"])
        pod_template_hash = (template.get("metadata", {}).get("labels") or {}).pop(POD_TEMPLATE_HASH, "")
        if excluding is not None and template_hash(template) == excluding:
            continue
        revision = int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0"))
        candidates.append((revision, StableRevision(template, pod_template_hash)))
    return max(candidates, key=lambda c: c[0])[1] if candidates else None


def pod_names_pattern(names: list[str]) -> str:
    """A PromQL regex (fully anchored by PromQL) matching exactly these pod names."""
    return "(" + "|".join(name.replace(".", "[.]") for name in sorted(names)) + ")"


def pods_of_replica_set(pods: list[Mapping[str, Any]], owner_name: str) -> list[str]:
    """Names of the pods whose controlling ReplicaSet is ``<owner_name>-<their pod-template-hash>``.

    Pod names are cut to 58 characters before their random suffix, so a name prefix cannot tell two
    Deployments apart (``web`` and ``web-admin``, or two long names); the owner reference can.
    """
    names = []
    for pod in pods:
        metadata = pod.get("metadata") or {}
        pod_hash = (metadata.get("labels") or {}).get(POD_TEMPLATE_HASH)
        controller = next((ref for ref in metadata.get("ownerReferences") or [] if ref.get("controller")), None)
        if pod_hash and controller and controller.get("kind") == "ReplicaSet" and \
                controller.get("name") == f"{owner_name}-{pod_hash}" and not metadata.get("deletionTimestamp"):
            names.append(metadata["name"])
    return names


def deployment_pods_pattern(deployment_names: list[str]) -> str:
    """A PromQL regex for every pod a Deployment of these names ever ran, for long windows (error budgets).

    Pods of past ReplicaSets are gone, so names are matched by their shape: ``<name>-<hash>-<5 chars>``,
    which ``web`` shares with no pod of ``web-admin``. Names so long that Kubernetes cut the hash off
    fall back to the cut prefix.
    """
    shapes = []
    for name in sorted(deployment_names):
        prefix = f"{name}-"
        escaped = name.replace(".", "[.]")
        if len(prefix) + 11 <= MAX_GENERATED_PREFIX:
            shapes.append(f"{escaped}-[a-z0-9]{{1,10}}-[a-z0-9]{{5}}")
        else:
            shapes.append(f"{prefix[:MAX_GENERATED_PREFIX].replace('.', '[.]')}[a-z0-9-]*")
    return "(" + "|".join(shapes) + ")"


# -- API calls (blocking) --------------------------------------------------------------------------------

def read_raw(namespace: str, name: str) -> dict[str, Any] | None:
    """A Deployment as the API server's JSON, or None when it does not exist."""
    api = kubernetes.client.AppsV1Api(api_client())
    try:
        response = api.read_namespaced_deployment(name, namespace, _preload_content=False)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return json.loads(response.data)


def read_stable_revision(deployment: Mapping[str, Any], excluding: str | None = None) -> StableRevision | None:
    """The stable revision of a Deployment, from its ReplicaSets (see :func:`stable_revision`)."""
    api = kubernetes.client.AppsV1Api(api_client())
    selector = deployment["spec"]["selector"].get("matchLabels") or {}
    label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
    response = api.list_namespaced_replica_set(deployment["metadata"]["namespace"], label_selector=label_selector,
                                               _preload_content=False)
    return stable_revision(json.loads(response.data)["items"], deployment["metadata"]["uid"], excluding)


def read_pod_names(deployment: Mapping[str, Any], pod_template_hash: str | None = None) -> list[str]:
    """The pods a Deployment runs now (of one revision, with ``pod_template_hash``), by owner, not by name."""
    selector = dict(deployment["spec"]["selector"].get("matchLabels") or {})
    if pod_template_hash:
        selector[POD_TEMPLATE_HASH] = pod_template_hash
    response = kubernetes.client.CoreV1Api(api_client()).list_namespaced_pod(
        deployment["metadata"]["namespace"], label_selector=",".join(f"{k}={v}" for k, v in selector.items()),
        _preload_content=False)
    return pods_of_replica_set(json.loads(response.data)["items"], deployment["metadata"]["name"])


def ensure_canary(body: dict[str, Any]) -> None:
    """Create the canary, or bring the existing one to the body's replicas and template.

    Raises CanaryNameTaken, touching nothing, when a Deployment of that name belongs to someone else.
    """
    api = kubernetes.client.AppsV1Api(api_client())
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    release = body["metadata"]["ownerReferences"][0]
    current = read_raw(namespace, name)
    if current is None:
        api.create_namespaced_deployment(namespace, body)
        return
    if not owned_by(current, release["uid"]):
        raise CanaryNameTaken(name_taken_message(namespace, name.removesuffix("-canary"), release["name"]))
    if current["spec"].get("replicas") == body["spec"]["replicas"] and \
            current["spec"]["template"] == body["spec"]["template"]:
        return
    patch = {"metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
             "spec": {"replicas": body["spec"]["replicas"], "template": body["spec"]["template"]}}
    api.patch_namespaced_deployment(name, namespace, patch)


def delete_canary(namespace: str, name: str, release_uid: str) -> None:
    """Delete the canary if it is the release's own; a Deployment of that name someone else owns stays.

    The delete carries the canary's UID as a precondition, so a Deployment re-created under the same name
    between the read and the delete is never the one deleted.
    """
    current = read_raw(namespace, name)
    if current is None or not owned_by(current, release_uid):
        return
    try:
        kubernetes.client.AppsV1Api(api_client()).delete_namespaced_deployment(
            name, namespace, propagation_policy="Background",
            body={"preconditions": {"uid": current["metadata"]["uid"]}})
    except kubernetes.client.ApiException as error:
        if error.status not in (404, 409):
            raise


def replace_fields(namespace: str, name: str, resource_version: str, fields: Mapping[str, Any]) -> None:
    """Set whole fields (JSON pointer -> value) of a Deployment, only if it is still at ``resource_version``.

    A JSON patch, not a merge: a restored pod template must come back exactly, without keys the bad
    revision added. Setting resourceVersion makes the API server refuse (409) a stale write.
    """
    operations = [{"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}]
    operations += [{"op": "add", "path": path, "value": value} for path, value in fields.items()]
    kubernetes.client.AppsV1Api(api_client()).patch_namespaced_deployment(name, namespace, operations)
