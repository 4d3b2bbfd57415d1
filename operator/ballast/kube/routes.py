"""The HTTPRoute and Service writes of exact-weight releases (Gateway API ``gateway.networking.k8s.io/v1``).

The release engine decides which backendRefs a route gets (:mod:`ballast.release.routing`); this module
reads routes, writes those backendRefs only over the route version they were computed from, and keeps
the two Services a release routes to: one for its stable pods only, one for its canary's pods.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import kubernetes

from ballast.kube.client import api_client
from ballast.kube.deployments import POD_TEMPLATE_HASH, owned_by

GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
HTTPROUTES = "httproutes"


class ServiceNameTaken(Exception):
    """A Service with the name Ballast needs exists and does not belong to the release."""


def read_route(namespace: str, name: str) -> dict[str, Any] | None:
    """An HTTPRoute, or None when it (or the Gateway API's HTTPRoute kind) does not exist."""
    try:
        return kubernetes.client.CustomObjectsApi(api_client()).get_namespaced_custom_object(
            GATEWAY_GROUP, GATEWAY_VERSION, namespace, HTTPROUTES, name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise


def route_rules(route: Mapping[str, Any] | None) -> list[dict[str, Any]] | None:
    return None if route is None else list((route.get("spec") or {}).get("rules") or [])


def write_backend_refs(namespace: str, name: str, resource_version: str,
                       backend_refs: Mapping[int, list[dict[str, Any]]]) -> bool:
    """Set the backendRefs of some rules of a route, only if it is still at ``resource_version``.

    False, writing nothing, when the route changed (or went) since: the caller decides again.
    """
    route = read_route(namespace, name)
    if route is None or route["metadata"]["resourceVersion"] != resource_version:
        return False
    rules = route_rules(route) or []
    for index, refs in backend_refs.items():
        rules[index] = {**rules[index], "backendRefs": refs}
    patch = {"metadata": {"resourceVersion": resource_version}, "spec": {"rules": rules}}
    try:
        kubernetes.client.CustomObjectsApi(api_client()).patch_namespaced_custom_object(
            GATEWAY_GROUP, GATEWAY_VERSION, namespace, HTTPROUTES, name, patch)
    except kubernetes.client.ApiException as error:
        if error.status in (404, 409):
            return False
        raise
    return True


def service_body(name: str, namespace: str, selector: Mapping[str, str], ports: list[dict[str, Any]],
                 release: Mapping[str, Any]) -> dict[str, Any]:
    """A Service for one side of a release, owned by the Release (deleting it garbage-collects the Service)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace,
                     "ownerReferences": [{"apiVersion": release["apiVersion"], "kind": release["kind"],
                                          "name": release["metadata"]["name"], "uid": release["metadata"]["uid"],
                                          "blockOwnerDeletion": False}]},
        "spec": {"selector": dict(selector), "ports": ports},
    }


def service_ports(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ports of a Service, as a Service selecting other pods of the same kind needs them."""
    keep = ("name", "port", "targetPort", "protocol", "appProtocol")
    return [{k: p[k] for k in keep if k in p} for p in (service.get("spec") or {}).get("ports") or []]


def stable_selector(deployment: Mapping[str, Any], pod_template_hash: str) -> dict[str, str]:
    """Only the pods of the Deployment's stable ReplicaSet: its selector plus their pod-template-hash."""
    return {**(deployment["spec"]["selector"].get("matchLabels") or {}), POD_TEMPLATE_HASH: pod_template_hash}


def read_service(namespace: str, name: str) -> dict[str, Any] | None:
    api = kubernetes.client.CoreV1Api(api_client())
    try:
        return json.loads(api.read_namespaced_service(name, namespace, _preload_content=False).data)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise


def ensure_service(body: dict[str, Any]) -> None:
    """Create the Service, or bring the release's own to the body's selector and ports.

    Raises ServiceNameTaken, touching nothing, when a Service of that name belongs to someone else.
    """
    api = kubernetes.client.CoreV1Api(api_client())
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    release = body["metadata"]["ownerReferences"][0]
    current = read_service(namespace, name)
    if current is None:
        api.create_namespaced_service(namespace, body)
        return
    if not owned_by(current, release["uid"]):
        raise ServiceNameTaken(f"Service {namespace}/{name} exists and does not belong to Release "
                               f"{release['name']}: Ballast needs that name to route the release's traffic. "
                               "Rename or delete that Service.")
    if current["spec"].get("selector") != body["spec"]["selector"]:
        api.patch_namespaced_service(name, namespace, {"metadata": {"resourceVersion": current["metadata"][
            "resourceVersion"]}, "spec": {"selector": body["spec"]["selector"]}})


def delete_service(namespace: str, name: str, owner_uid: str) -> None:
    """Delete the Service if it is the release's own (UID precondition, as for the canary)."""
    current = read_service(namespace, name)
    if current is None or not owned_by(current, owner_uid):
        return
    try:
        kubernetes.client.CoreV1Api(api_client()).delete_namespaced_service(
            name, namespace, body={"preconditions": {"uid": current["metadata"]["uid"]}})
    except kubernetes.client.ApiException as error:
        if error.status not in (404, 409):
            raise
