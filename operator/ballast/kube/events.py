"""Posting Kubernetes events from places kopf's own ``kopf.event`` cannot reach (admission handlers)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kubernetes

from ballast.kube.client import api_client

SOURCE = "ballast"


def post_event(involved: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Create one core/v1 Event about ``involved`` (an object body; no uid needed, e.g. before creation)."""
    metadata = involved.get("metadata") or {}
    namespace = metadata.get("namespace") or "default"
    now = datetime.now(UTC)
    kubernetes.client.CoreV1Api(api_client()).create_namespaced_event(namespace, {
        "metadata": {"generateName": f"{metadata.get('name') or 'object'}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
            "name": metadata.get("name"), "namespace": namespace, "uid": metadata.get("uid"),
        },
        "type": type_, "reason": reason, "message": message[:1024],
        "source": {"component": SOURCE}, "reportingComponent": SOURCE,
        "firstTimestamp": now.isoformat(), "lastTimestamp": now.isoformat(), "count": 1,
    })
