"""In-memory indexes of the objects decisions need, fed by kopf's watches.

kopf fills every index from a full list before any other handler runs, so the first status
computed after a (re)start already sees every Deployment: no flapping conditions, no spurious events.
Values are small plain snapshots, not live bodies, to keep memory flat at thousands of objects: each
index keeps what its readers use (see each one), measured at 10,000 Deployments in ``benchmarks/scale.py``.
ServiceOwnerships and ReleasePolicies keep their status: it is what their passes compare a new status with,
so that a pass that finds nothing changed writes nothing.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import kopf

from ballast.api.common import GROUP, VERSION
from ballast.policy.workloads import WorkloadSummary


def snapshot(body: kopf.Body) -> dict[str, Any]:
    """A detached copy of what a reconciler needs from a Ballast object."""
    metadata = body.get("metadata", {})
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": {k: metadata.get(k) for k in ("name", "namespace", "uid", "generation", "resourceVersion")},
        "spec": copy.deepcopy(dict(body.get("spec") or {})),
        "status": copy.deepcopy(dict(body.get("status") or {})),
    }


@kopf.index("namespaces")
def namespace_labels(name: str, labels: kopf.Labels, **_: Any) -> dict[str, dict[str, str]]:
    return {name: dict(labels)}


UNREAD_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
"""Annotations no rule reads that are large: ``kubectl apply`` keeps the whole applied manifest in this one,
often kilobytes per workload. (The rules read the policy's required annotation keys and Ballast's own.)"""


def workload_summary(body: kopf.Body, kind: str | None) -> WorkloadSummary:
    """The facts of a workload the rules read: name, kind, labels, owners and annotations but the unread."""
    summary = WorkloadSummary.from_body(body, kind=kind)
    if UNREAD_ANNOTATIONS.isdisjoint(summary.annotations):
        return summary
    read = {key: value for key, value in summary.annotations.items() if key not in UNREAD_ANNOTATIONS}
    return dataclasses.replace(summary, annotations=read)


@kopf.index("apps", "v1", "deployments")
@kopf.index("apps", "v1", "statefulsets")
@kopf.index("apps", "v1", "daemonsets")
def workloads_by_namespace(
    body: kopf.Body, namespace: str | None, resource: kopf.Resource, **_: Any
) -> dict[str | None, WorkloadSummary]:
    # One index for the three kinds (kopf keys entries by uid, so kinds never collide).
    return {namespace: workload_summary(body, resource.kind)}


@kopf.index(GROUP, VERSION, "serviceownerships")
def ownerships_by_namespace(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str | None, dict[str, Any]]:
    return {namespace: snapshot(body)}


@kopf.index(GROUP, VERSION, "releasepolicies")
def policies_by_name(body: kopf.Body, name: str, **_: Any) -> dict[str, dict[str, Any]]:
    return {name: snapshot(body)}


RELEASE_STATUS_READ = ("phase", "finishedAt")
"""The only status fields read from the Releases index (triggers, history, statistics): a release pass
reads its Release from the API server, so analyses and conditions, which grow with every step, stay out."""


@kopf.index(GROUP, VERSION, "releases")
def releases_by_namespace(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str | None, dict[str, Any]]:
    snap = snapshot(body)
    for key in ("creationTimestamp", "labels", "ownerReferences"):  # who made it, for created_by_operator
        snap["metadata"][key] = copy.deepcopy(body.get("metadata", {}).get(key))
    snap["status"] = {key: value for key, value in snap["status"].items() if key in RELEASE_STATUS_READ}
    return {namespace: snap}
