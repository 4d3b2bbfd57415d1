"""Pod simulator: stands in for the scheduler and kubelet of the local control plane.

The local control plane has no nodes, so pods created by ReplicaSets would stay
Pending forever and no Deployment would ever become Available. Like kwok, this
process watches pods and writes what a kubelet would report through the pods'
status subresource: Running, an IP, Ready conditions and container statuses.

A pod template annotated `sim.ballast.dev/never-ready: "true"` yields pods that
run but never become ready (container in CrashLoopBackOff), which is how tests
model a broken release.

    python -m tests.harness.podsim --kubeconfig K [--namespace-selector SELECTOR]
"""

from __future__ import annotations

import argparse
import itertools
import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.harness.podwatch import (
    NamespaceFilter,
    Pod,
    add_common_args,
    annotation,
    configure_logging,
    core_api,
    pod_key,
    watch_pods,
)

NEVER_READY = "sim.ballast.dev/never-ready"

log = logging.getLogger("podsim")


def simulated_status(pod: Pod, ip: str, ready: bool) -> dict[str, Any]:
    """The status a kubelet would report once the pod's containers started."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flag = "True" if ready else "False"

    def condition(kind: str, status: str) -> dict[str, str]:
        extra = {} if status == "True" else {"reason": "ContainersNotReady"}
        return {"type": kind, "status": status, "lastTransitionTime": now, **extra}

    if ready:
        state: dict[str, Any] = {"running": {"startedAt": now}}
    else:
        state = {"waiting": {"reason": "CrashLoopBackOff", "message": "simulated by podsim"}}
    containers = [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": "",
            "ready": ready,
            "started": ready,
            # A crash-looping container has restarted at least once.
            "restartCount": 0 if ready else 1,
            "state": state,
        }
        for c in pod["spec"]["containers"]
    ]
    return {
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": now,
        "conditions": [
            condition("PodScheduled", "True"),
            condition("Initialized", "True"),
            condition("ContainersReady", flag),
            condition("Ready", flag),
        ],
        "containerStatuses": containers,
    }


class PodSimulator:
    def __init__(self, core: client.CoreV1Api) -> None:
        self._core = core
        self._ips = (f"10.244.{n // 254 % 256}.{n % 254 + 1}" for n in itertools.count())

    def handle(self, kind: str, pod: Pod) -> None:
        if kind == "DELETED":
            return
        namespace, name = pod_key(pod)
        try:
            if pod["metadata"].get("deletionTimestamp"):
                # Graceful deletion waits for a kubelet to confirm; there is none,
                # so confirm it the way kubelet does: delete with grace period 0.
                self._core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
                log.info("deleted %s/%s", namespace, name)
            elif (pod.get("status") or {}).get("phase") != "Running":
                ready = annotation(pod, NEVER_READY) != "true"
                status = simulated_status(pod, next(self._ips), ready)
                self._core.patch_namespaced_pod_status(name, namespace, {"status": status})
                log.info("%s/%s running, ready=%s", namespace, name, ready)
        except ApiException as exc:
            # 404: pod already gone. 409: it changed under us; its next event retries.
            if exc.status not in (404, 409):
                raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(parser)
    args = parser.parse_args()
    configure_logging("podsim")
    core = core_api(args.kubeconfig)
    log.info("watching pods")
    watch_pods(core, NamespaceFilter(core, args.namespace_selector), PodSimulator(core).handle)


if __name__ == "__main__":
    main()
