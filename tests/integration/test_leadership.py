"""Two operator replicas with leader election, on the real API server: both answer admission from their
own indexes, exactly one acts, and the other takes over acting when it dies (after the lease runs out) or
steps down (at once, as the Lease is released).

Each replica is a real `ballast operator run --leader-election` process whose $POD_NAME names a real Pod,
so the leader label is checked too. Which replica acts is read from what only an acting operator does:
the webhook configuration (which each replica would point at its own port) points at its webhook port.
That the follower admits is read from its own webhook's answer to a review sent to it directly.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import kubernetes
import pytest
import requests

from ballast.api.common import GROUP, VERSION
from ballast.api.vocabulary import LEADER_LABEL
from tests.harness import wait_for
from tests.harness.operator import OperatorProcess
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy
from tests.integration.test_admission import refused

LEASE_SECONDS = 6


@pytest.fixture
def replicas(cluster, core, operator, namespace, tmp_path) -> Iterator[dict[str, OperatorProcess]]:
    """Replicas a and b, each with its own Pod in the operator namespace; the session operator steps aside."""
    home = f"{namespace}-operator"
    core.create_namespace({"metadata": {"name": home}})
    for name in ("replica-a", "replica-b"):
        core.create_namespaced_pod(home, {"metadata": {"name": name}, "spec": {
            "automountServiceAccountToken": False, "containers": [{"name": "operator", "image": "ballast:test"}]}})
    made = {name: OperatorProcess(
        cluster, tmp_path / f"{name}.log",
        extra_args=("--leader-election", "--operator-namespace", home,
                    "--leader-election-lease-seconds", str(LEASE_SECONDS)),
        env={"POD_NAME": f"replica-{name}"}) for name in ("a", "b")}
    operator.stop()  # one acting operator at a time: the webhook configurations follow whoever acts
    try:
        yield made
    finally:
        for replica in made.values():
            replica.stop()
        operator.start()
        core.delete_namespace(home)


def holder(coordination, namespace: str) -> str | None:
    with contextlib.suppress(kubernetes.client.ApiException):
        return coordination.read_namespaced_lease("ballast", namespace).spec.holder_identity
    return None


def webhook_port(api_client) -> int | None:
    admission = kubernetes.client.AdmissionregistrationV1Api(api_client)
    with contextlib.suppress(kubernetes.client.ApiException):
        hooks = admission.read_validating_webhook_configuration("ballast.dev").webhooks or []
        ports = {urlsplit(hook.client_config.url).port for hook in hooks}
        return ports.pop() if len(ports) == 1 else None
    return None


def listening(replica: OperatorProcess) -> bool:
    try:
        requests.get(replica.webhook_url, timeout=1, verify=False)
    except requests.ConnectionError:
        return False
    return True


def review_by(replica: OperatorProcess, namespace: str, operation: str, new: dict, old: dict | None = None) -> dict:
    """The replica's own workload webhook's answer to a review sent to it directly (not through the API server)."""
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "3a1d", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"}, "operation": operation,
        "namespace": namespace, "name": new["metadata"]["name"], "userInfo": {"username": "alice"},
        "object": new, "oldObject": old, "dryRun": False}}
    return requests.post(f"{replica.webhook_url}/workloads", json=review, timeout=10,
                         verify=str(replica.cert_dir / "tls.crt")).json()["response"]


def answers_from_its_indexes(replica: OperatorProcess, namespace: str) -> bool:
    """The replica's webhook refuses a governed Deployment without ownership annotations."""
    answer = review_by(replica, namespace, "CREATE", deployment("naked", {"app": "naked"}))
    return not answer["allowed"] and "is missing annotation ballast.dev/owner" in answer["status"]["message"]


def leader_labels(core, namespace: str) -> dict[str, str | None]:
    return {pod.metadata.name: (pod.metadata.labels or {}).get(LEADER_LABEL)
            for pod in core.list_namespaced_pod(namespace).items}


def acting(replica: OperatorProcess, api_client, apps, namespace: str) -> bool:
    """The webhook configuration points at this replica and its webhook refuses a naked workload."""
    if webhook_port(api_client) != urlsplit(replica.webhook_url).port:
        return False
    refusal = refused(apps, namespace, deployment("naked", {"app": "naked"}))
    return refusal is not None and "is missing annotation ballast.dev/owner" in refusal.body


def test_one_replica_acts_and_the_other_takes_over(replicas, api_client, core, apps, custom, namespace):
    a, b = replicas["a"], replicas["b"]
    home = f"{namespace}-operator"
    coordination = kubernetes.client.CoordinationV1Api(api_client)
    custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
        f"lead-{namespace}", {"ballast.dev/test-ns": namespace}))
    try:
        a.start()
        wait_for(lambda: holder(coordination, home) == "replica-a", 30, "replica a never took the lease")
        b.start()  # ready once its indexes are filled: it answers admission as a follower
        wait_for(lambda: acting(a, api_client, apps, namespace), 30, "replica a never acted")
        assert "is waiting to lead" in b.log_tail()
        assert listening(b) and answers_from_its_indexes(b, namespace), "the follower does not answer admission"
        assert answers_from_its_indexes(a, namespace)
        assert holder(coordination, home) == "replica-a"
        assert leader_labels(core, home) == {"replica-a": "true", "replica-b": None}

        # The leader dies without a word: the standby waits out the lease, then acts.
        a.kill()
        died = time.monotonic()
        wait_for(lambda: holder(coordination, home) == "replica-b", 4 * LEASE_SECONDS, "b never took over")
        takeover = time.monotonic() - died
        assert takeover >= LEASE_SECONDS - 1, f"b took the lease {takeover:.1f}s after a died: before it ran out"
        wait_for(lambda: acting(b, api_client, apps, namespace), 30, "replica b never acted")
        assert leader_labels(core, home)["replica-b"] == "true"

        # a comes back as the standby (dropping the label its Pod kept); b steps down cleanly: a leads at once.
        a.start()
        wait_for(lambda: leader_labels(core, home)["replica-a"] is None, 10, "a kept its stale leader label")
        b.stop()
        stepped_down = time.monotonic()
        wait_for(lambda: holder(coordination, home) == "replica-a", 2 * LEASE_SECONDS, "a never took over")
        handover = time.monotonic() - stepped_down
        assert handover < LEASE_SECONDS - 1, f"handover took {handover:.1f}s: b did not release the lease"
        wait_for(lambda: acting(a, api_client, apps, namespace), 30, "replica a never acted again")
        assert leader_labels(core, home) == {"replica-a": "true", "replica-b": None}
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", f"lead-{namespace}")


def test_a_follower_lists_the_changes_its_freeze_refused(replicas, api_client, custom, namespace):
    """A refused change never reaches the API server: the replica that refused it, here a follower, records
    it in the policy's status itself (``controllers/policies.py`` ``record_answered_refusals``)."""
    a, b = replicas["a"], replicas["b"]
    coordination = kubernetes.client.CoordinationV1Api(api_client)
    policy = f"freeze-{namespace}"
    now = datetime.now(UTC)
    custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
        policy, {"ballast.dev/test-ns": namespace}, freezeWindows=[{
            "name": "incident", "start": (now - timedelta(hours=1)).isoformat(),
            "end": (now + timedelta(hours=1)).isoformat(), "reason": "an incident is under way"}]))
    try:
        a.start()
        wait_for(lambda: holder(coordination, f"{namespace}-operator") == "replica-a", 30, "a never led")
        b.start()
        old = deployment("shop", {"app": "shop"}, annotations=OWNERSHIP_ANNOTATIONS)
        new = copy.deepcopy(old)
        new["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.example.com/app:2"
        answer = review_by(b, namespace, "UPDATE", new, old)
        assert not answer["allowed"] and "incident" in answer["status"]["message"]
        refusals = wait_for(lambda: (custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy)
                                     .get("status") or {}).get("freezeRefusals"), 30,
                            "the follower's refusal never reached the policy's status")
        assert [(r["namespace"], r["name"], r["window"]) for r in refusals] == [(namespace, "shop", "incident")]
        assert "is waiting to lead" in b.log_tail()  # b answered and recorded it as a follower
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy)
