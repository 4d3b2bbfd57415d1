"""Pod list+watch loop shared by the pod and traffic simulators.

Both simulators react to the same stream of pods with the same namespace rules,
so the rules (skip `kube-*`, optional namespace label selector, leave real-node
pods to the kubelet) and the list/watch/re-list-on-410 dance live here once.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

Pod = dict[str, Any]
PodHandler = Callable[[str, Pod], None]

REAL_NODE_TAINT = "ballast.dev/real-node"
"""The taint of the local real node (tests/harness/node.py). A pod that tolerates it is a real-pod
workload: kube-scheduler may bind it to that node and its kubelet runs it, so the simulators leave it
alone. A pod that does not tolerate it can never be bound there, so the kubelet never runs a pod the
simulators play."""

log = logging.getLogger(__name__)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument(
        "--namespace-selector",
        default="",
        help="label selector over namespaces; default: every namespace not named kube-*",
    )


def core_api(kubeconfig: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))


def pod_key(pod: Pod) -> tuple[str, str]:
    meta = pod["metadata"]
    return meta["namespace"], meta["name"]


def annotation(pod: Pod, key: str) -> str | None:
    return (pod["metadata"].get("annotations") or {}).get(key)


def runs_on_real_node(pod: Pod) -> bool:
    """True for a real-pod workload: the pod tolerates the real node's taint (see REAL_NODE_TAINT)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    return any(t.get("key") == REAL_NODE_TAINT for t in tolerations)


def is_ready(pod: Pod) -> bool:
    """Ready per the pod's conditions and not on its way out (what an endpoint controller uses)."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class NamespaceFilter:
    """Decides which namespaces a simulator acts in.

    With a label selector, the matching namespaces are listed lazily and cached
    for a few seconds: a pod in a namespace we have not seen triggers a refresh,
    so freshly created test namespaces are picked up without a namespace watch.
    """

    def __init__(self, core: client.CoreV1Api, label_selector: str, ttl: float = 5.0) -> None:
        self._core = core
        self._selector = label_selector
        self._ttl = ttl
        self._matching: set[str] = set()
        self._fetched_at = float("-inf")

    def __call__(self, namespace: str) -> bool:
        if namespace.startswith("kube-"):
            return False
        if not self._selector:
            return True
        age = time.monotonic() - self._fetched_at
        if age > self._ttl or (namespace not in self._matching and age > 0.5):
            items = self._core.list_namespace(label_selector=self._selector).items
            self._matching = {ns.metadata.name for ns in items}
            self._fetched_at = time.monotonic()
        return namespace in self._matching


def watch_pods(core: client.CoreV1Api, admits: Callable[[str], bool], handler: PodHandler) -> None:
    """List, then watch pods in all namespaces `admits`, forever.

    `handler(event_type, pod)` gets ADDED/MODIFIED/DELETED with the raw pod dict.
    After a re-list (watch expired with 410, or a connection error) every listed
    pod is replayed as ADDED and pods that vanished meanwhile get a DELETED, so
    handlers never have to reconcile against the API themselves.
    """
    known: dict[tuple[str, str], Pod] = {}

    def dispatch(kind: str, pod: Pod) -> None:
        if not admits(pod["metadata"]["namespace"]) or runs_on_real_node(pod):
            return
        if kind == "DELETED":
            known.pop(pod_key(pod), None)
        else:
            known[pod_key(pod)] = pod
        try:
            handler(kind, pod)
        except Exception:  # one bad pod must not stop the simulation of all others
            log.exception("handler failed for %s/%s", *pod_key(pod))

    while True:
        try:
            listing = json.loads(core.list_pod_for_all_namespaces(_preload_content=False).data)
            listed = {pod_key(p): p for p in listing["items"]}
            for key in set(known) - set(listed):
                dispatch("DELETED", known[key])
            for pod in listed.values():
                dispatch("ADDED", pod)
            resource_version = listing["metadata"]["resourceVersion"]
            while True:  # a server-side timeout ends a stream; resume it without re-listing
                stream = watch.Watch().stream(
                    core.list_pod_for_all_namespaces,
                    resource_version=resource_version,
                    timeout_seconds=60,
                )
                for event in stream:
                    pod = event["raw_object"]
                    resource_version = pod["metadata"]["resourceVersion"]
                    dispatch(event["type"], pod)
        except ApiException as exc:
            if exc.status != 410:
                log.warning("pod watch failed (%s), re-listing", exc.status)
                time.sleep(1)
        except Exception as exc:  # apiserver restarting or unreachable: keep trying
            log.warning("pod watch failed (%s), re-listing", exc)
            time.sleep(1)


def configure_logging(name: str) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
