"""Kubernetes client configuration and status writes.

Everything here is blocking (the official client is synchronous); async callers wrap calls in
``asyncio.to_thread``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import kubernetes

from ballast.api.common import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"


def configure(kubeconfig: str | None) -> None:
    """Point this process (and kopf's login, which reads the same sources) at one cluster.

    An explicit kubeconfig wins; then ``$KUBECONFIG``/``~/.kube/config``; then the in-cluster
    service account.
    """
    if kubeconfig:
        os.environ["KUBECONFIG"] = os.path.abspath(kubeconfig)
    try:
        kubernetes.config.load_kube_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_incluster_config()


@dataclass(frozen=True)
class CustomObjectRef:
    """Names one Ballast custom object."""

    plural: str
    name: str
    namespace: str | None = None


def merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``: removed keys become null."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old or old[key] != value:
            patch[key] = merge_patch(old.get(key), value)
    return patch


def update_status(
    ref: CustomObjectRef,
    current: dict[str, Any] | None,
    owned: dict[str, Any],
    resource_version: str | None = None,
) -> bool:
    """Set the status fields this caller owns to ``owned``, leaving other writers' fields alone.

    Sends nothing and returns False when the fields already hold these values. With
    ``resource_version`` the write is optimistic: the API server refuses it (409) if the object
    changed since it was read, so a stale computation never overwrites a newer one.
    """
    current = current or {}
    before = {key: current[key] for key in owned if key in current}
    patch = merge_patch(before, owned)
    if not patch:
        return False
    body: dict[str, Any] = {"status": patch}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    api = kubernetes.client.CustomObjectsApi()
    if ref.namespace is None:
        api.patch_cluster_custom_object_status(
            GROUP, VERSION, ref.plural, ref.name, body, _content_type=MERGE_PATCH
        )
    else:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, ref.plural, ref.name, body, _content_type=MERGE_PATCH
        )
    return True
