"""Small helpers the integration tests share: building objects and reading them back."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import kubernetes

from ballast.api.common import GROUP, VERSION

OWNERSHIP_ANNOTATIONS = {
    "ballast.dev/owner": "payments",
    "ballast.dev/alerts": "CheckoutHighErrorRate",
    "ballast.dev/runbook": "https://runbooks.example.com/checkout",
}


def deployment(name: str, labels: dict[str, str], replicas: int = 1,
               annotations: dict[str, str] | None = None,
               template_annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": template_annotations or {}},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]},
            },
        },
    }


def service_ownership(name: str, selector: dict[str, str], **spec: Any) -> dict[str, Any]:
    body = {"selector": {"matchLabels": selector}, "owner": "payments",
            "runbook": "https://runbooks.example.com/checkout", "alerts": ["CheckoutHighErrorRate"]}
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ServiceOwnership", "metadata": {"name": name}, "spec": body}


def release_policy(name: str, selector: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ReleasePolicy", "metadata": {"name": name},
            "spec": {"namespaceSelector": {"matchLabels": selector}, **spec}}


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == kind:
            return cond
    return None


def events_for(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> list[kubernetes.client.CoreV1Event]:
    return core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items



def ballast(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the `ballast` / `kubectl ballast` command line as whoever the kubeconfig authenticates."""
    return subprocess.run([sys.executable, "-m", "ballast.cli.main", *args, "--kubeconfig", kubeconfig],
                          capture_output=True, text=True)
