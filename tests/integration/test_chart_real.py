"""The chart installed for real: `helm install charts/ballast` puts two operator Pods (the operator image built
from the project's wheel) on the real node, under the chart's ServiceAccount, securityContext, probes and
PodDisruptionBudget; the API server calls their webhook through the chart's Service (its ClusterIP, routed
by kube-proxy to either Ready Pod: every replica admits, the Lease holder alone acts). What test_chart.py
cannot show, since there the operator runs as a process on the host: the Pod spec itself works (read-only
root filesystem, certificate mount, in-cluster credentials, ports and probes), leader election between
real Pods, and the uninstall hook.

The failover time and what admission answered during `helm upgrade` are printed (not asserted beyond
"never admitted a refused change": they measure this machine as much as Ballast).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
import kubernetes.dynamic
import pytest

from ballast.api.common import GROUP, VERSION
from tests.harness import images, wait_for
from tests.harness.node import POD_LOGS_DIR, REAL_POD_PLACEMENT, LocalNode
from tests.integration import test_real_releases
from tests.integration.kube import release_policy
from tests.integration.realpods import import_image, wait_for_default_service_account
from tests.integration.releasing import canary_gone, final_release
from tests.integration.test_admission import NAKED, refused
from tests.integration.test_chart import CHART, NAMESPACE, helm

demo_image = test_real_releases.demo_image
shop = test_real_releases.shop
RELEASE = "ballast"
LEADER_LABEL = "ballast.dev/leader"
SELECTOR = f"app.kubernetes.io/name=ballast,app.kubernetes.io/instance={RELEASE}"
HOOK_SELECTOR = f"app.kubernetes.io/component=remove-webhooks,app.kubernetes.io/instance={RELEASE}"
REFUSAL = "is missing annotation ballast.dev/owner"


@pytest.fixture(scope="module")
def operator_image(real_node: LocalNode, pytestconfig: pytest.Config) -> str:
    seconds = import_image(real_node, pytestconfig, images.operator_archive)
    print(f"operator image ready in {seconds:.1f}s")
    return images.OPERATOR_IMAGE


def chart_values(cluster) -> dict[str, Any]:
    """The chart's values on the real node: the imported image, the node's placement, Prometheus at the host's
    address (pods cannot reach the host's loopback)."""
    repository, tag = images.OPERATOR_IMAGE.rsplit(":", 1)
    return {"image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "prometheusUrl": cluster.pod_prometheus_url, **REAL_POD_PLACEMENT}


def operator_pods(core) -> list[kubernetes.client.V1Pod]:
    return [p for p in core.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items
            if p.metadata.deletion_timestamp is None]


def is_ready(pod: kubernetes.client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def leader(core) -> kubernetes.client.V1Pod | None:
    """The Pod that holds the Lease and labels itself (only it acts)."""
    holder = kubernetes.client.CoordinationV1Api(core.api_client).read_namespaced_lease(
        RELEASE, NAMESPACE).spec.holder_identity
    labelled = [p for p in operator_pods(core) if (p.metadata.labels or {}).get(LEADER_LABEL) == "true"]
    return labelled[0] if len(labelled) == 1 and labelled[0].metadata.name == holder else None


def webhook_endpoints(core) -> set[str]:
    endpoints = core.read_namespaced_endpoints(f"{RELEASE}-webhook", NAMESPACE).subsets or []
    return {a.ip for s in endpoints for a in s.addresses or []}


def settled(core) -> kubernetes.client.V1Pod | None:
    """The leader, once both replicas run Ready and both serve admission (every replica admits)."""
    pods = operator_pods(core)
    if len(pods) != 2 or not all(is_ready(p) for p in pods):
        return None
    return leader(core) if webhook_endpoints(core) == {p.status.pod_ip for p in pods} else None


def container_log(pod: kubernetes.client.V1Pod, lines: int = 15) -> str:
    """The last lines the pod's containers wrote, from the kubelet's log files on this host."""
    files = sorted(POD_LOGS_DIR.glob(f"{pod.metadata.namespace}_{pod.metadata.name}_{pod.metadata.uid}/*/*.log"))
    return "\n".join(line for path in files for line in path.read_text(errors="replace").splitlines()[-lines:])


def pod_diagnosis(core) -> str:
    return "\n".join(f"{pod.metadata.name} {pod.status.phase} {pod.status.container_statuses}\n{container_log(pod)}"
                     for pod in core.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items)


def wait_settled(core, timeout: float, what: str) -> kubernetes.client.V1Pod:
    try:
        return wait_for(lambda: settled(core), timeout, what)
    except TimeoutError as error:
        raise AssertionError(f"{error}:\n{pod_diagnosis(core)}") from None


@pytest.fixture(scope="module")
def chart(real_node, operator_image, cluster, api_client, crds, operator) -> Iterator[helm.Configuration]:
    """The chart installed into ballast-system with two replicas on the real node, both Ready, one leading.

    The session's host operator is stopped meanwhile: the webhook configurations follow whoever runs."""
    core = kubernetes.client.CoreV1Api(api_client)
    operator.stop()
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
    wait_for_default_service_account(core, NAMESPACE)
    config = helm.Configuration(namespace=NAMESPACE, kubeconfig=cluster.kubeconfig)
    started = time.monotonic()
    asyncio.run(helm.Install(config).run(RELEASE, str(CHART), values=chart_values(cluster), wait=False, timeout=60))
    installed = True
    try:
        wait_settled(core, 180, "the chart's two operator Pods never ran Ready with one leading")
        print(f"helm install: two Ready operator Pods, one leading, {time.monotonic() - started:.1f}s")
        yield config
        installed = bool(asyncio.run(helm.List(config).run()))
    finally:
        if installed:
            asyncio.run(helm.Uninstall(config).run(RELEASE, wait=True, timeout=120))
        # test_chart.py's operator competes for a Lease of the same name: leave it none to wait out.
        kubernetes.client.CoordinationV1Api(api_client).delete_namespaced_lease(RELEASE, NAMESPACE)
        operator.start()


@pytest.fixture(scope="module")
def guarded(chart, core, custom) -> Iterator[str]:
    """A namespace under a policy that enforces ownership annotations (the probe a refusal answers)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"ballast.dev/test-ns": name}}})
    custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
        f"chart-{name}", {"ballast.dev/test-ns": name}))
    try:
        yield name
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", f"chart-{name}")
        core.delete_namespace(name)


def refusal(apps, namespace: str) -> str | None:
    """Ballast's refusal of a Deployment without owner annotations (None when the webhook did not refuse it)."""
    error = refused(apps, namespace, NAKED)
    return error.body if error is not None and REFUSAL in error.body else None


def test_a_pod_reaches_the_api_server_in_cluster(real_node, operator_image, core, namespace):
    """The precondition of everything else here: an in-cluster client in a Pod (the operator image's Python
    client, from KUBERNETES_SERVICE_HOST/PORT and the mounted token) calls the API server."""
    script = ("import kubernetes; kubernetes.config.load_incluster_config(); "
              "print('version', kubernetes.client.VersionApi().get_code().git_version)")
    pod = {"metadata": {"name": "in-cluster"}, "spec": {
        **REAL_POD_PLACEMENT, "restartPolicy": "Never",
        "containers": [{"name": "client", "image": operator_image, "imagePullPolicy": "Never",
                        "command": ["python3", "-c", script]}]}}
    wait_for_default_service_account(core, namespace)
    core.create_namespaced_pod(namespace, pod)
    def finished() -> kubernetes.client.V1Pod | None:
        current = core.read_namespaced_pod("in-cluster", namespace)
        return current if current.status.phase in ("Succeeded", "Failed") else None

    done = wait_for(finished, 90, "the pod never finished")
    log = container_log(done)
    assert done.status.phase == "Succeeded" and "version v1.20" in log, (done.status.phase, log)


def test_the_chart_runs_two_operator_pods_as_specified(chart, core, api_client):
    pods = operator_pods(core)
    assert len(pods) == 2 and all(is_ready(p) for p in pods)
    assert {p.spec.node_name for p in pods} == {"ballast-node"}
    for pod in pods:
        assert pod.spec.service_account_name == "ballast"
        assert pod.spec.containers[0].image == images.OPERATOR_IMAGE
        assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
        assert pod.spec.security_context.run_as_user == images.OPERATOR_UID
        assert pod.status.container_statuses[0].restart_count == 0, pod_diagnosis(core)
    # One leader acts; both Ready replicas are behind the webhook Service (every replica admits).
    assert wait_settled(core, 30, "the two replicas never both served admission under one leader") is not None
    budgets = kubernetes.dynamic.DynamicClient(api_client).resources.get(
        api_version="policy/v1beta1", kind="PodDisruptionBudget")
    budget = wait_for(lambda: (b := budgets.get(name="ballast", namespace=NAMESPACE)).status.expectedPods == 2 and b,
                      30, "the PodDisruptionBudget never counted the two Pods")
    assert budget.status.disruptionsAllowed == 1 and budget.status.currentHealthy == 2


def test_the_charted_operator_refuses_a_non_compliant_deployment(guarded, apps):
    body = wait_for(lambda: refusal(apps, guarded), 60, "the chart's operator never refused")
    assert "deployment" in body.lower()


def test_the_charted_operator_releases_a_compliant_change_on_real_pods(chart, shop, apps, custom):
    namespace, load = shop
    shipped = test_real_releases.ship(apps, namespace, env={"version": "2"})
    release = final_release(custom, namespace, timeout=180)
    status = release["status"]
    assert status["phase"] == "Promoted", status
    assert status["analyses"][-1]["verdict"] == "Pass", status["analyses"]
    assert status["analyses"][-1]["canary"]["requests"] >= 20, status["analyses"]
    wait_for(lambda: canary_gone(apps, namespace), 60, "the canary was never deleted")
    users = load.counts(since=shipped)
    assert users.get(500, 0) == 0, users
    print(f"chart-installed operator: Promoted {time.monotonic() - shipped:.1f}s after the change; users {users}")


def test_deleting_the_leader_pod_fails_over(chart, guarded, core, apps):
    old = wait_settled(core, 60, "no settled leader before the failover")
    standby = next(p.metadata.name for p in operator_pods(core) if p.metadata.name != old.metadata.name)
    deleted = time.monotonic()
    core.delete_namespaced_pod(old.metadata.name, NAMESPACE)
    new = wait_for(lambda: (p := leader(core)) and p.metadata.name != old.metadata.name and p, 60,
                   "no other Pod took over the Lease and label")
    led = time.monotonic() - deleted
    wait_for(lambda: refusal(apps, guarded), 60, "the new leader never refused")
    admitting = time.monotonic() - deleted
    wait_settled(core, 120, "the Deployment never restored two Ready replicas")
    # Either the standby or the Pod replacing the deleted one wins the released Lease, whichever asks first.
    taker = "the standby" if new.metadata.name == standby else "the replacement Pod"
    print(f"failover: {taker} led {led:.1f}s after the leader Pod's deletion, refused again after "
          f"{admitting:.1f}s")


def test_helm_upgrade_keeps_admission(chart, guarded, core, apps, cluster):
    """A rolling upgrade replaces both Pods while a non-compliant Deployment is probed throughout: it is never
    admitted (the webhook's failurePolicy is Fail), and every call is answered by a replica: none fails for
    want of a Ready one (issue 12's promise, on real Pods)."""
    before = {p.metadata.name for p in operator_pods(core)}
    answers: Counter[str] = Counter()
    with ThreadPoolExecutor(1) as helm_thread:
        task = helm_thread.submit(asyncio.run, helm.Upgrade(chart).run(
            RELEASE, str(CHART), values={**chart_values(cluster), "logFormat": "plain"}, wait=False, timeout=60))

        failures: list[str] = []

        def probe() -> None:
            error = refused(apps, guarded, NAKED)
            answers["admitted" if error is None else "refused" if REFUSAL in error.body else
                    f"failed ({error.status})"] += 1
            if error is not None and REFUSAL not in error.body:
                failures.append(error.body)

        def rolled() -> bool:
            probe()
            pods = operator_pods(core)
            return task.done() and not before & {p.metadata.name for p in pods} and settled(core) is not None

        started = time.monotonic()
        wait_for(rolled, 240, f"the upgrade never replaced both Pods (answers {answers})", interval=0.5)
        took = time.monotonic() - started
        task.result()
    deployment = apps.read_namespaced_deployment(RELEASE, NAMESPACE)
    assert "--log-format=plain" in deployment.spec.template.spec.containers[0].args
    assert answers["admitted"] == 0, answers
    # Every Ready replica admits and a stopping one drains: no call finds the Service without a replica.
    assert not failures, (answers, failures[0][:300])
    assert wait_for(lambda: refusal(apps, guarded), 60, "admission did not work after the upgrade")
    print(f"helm upgrade: both Pods replaced in {took:.1f}s; admission answers meanwhile {dict(answers)}"
          + (f"; the first failure: {failures[0][:300]}" if failures else ""))


def test_helm_uninstall_leaves_no_webhook_configuration(chart, guarded, core, api_client):
    admission = kubernetes.client.AdmissionregistrationV1Api(api_client)
    assert admission.read_validating_webhook_configuration("ballast.dev").webhooks  # the operator made them
    asyncio.run(helm.Uninstall(chart).run(RELEASE, wait=True, timeout=120))

    def gone(read) -> bool:
        try:
            read("ballast.dev")
        except kubernetes.client.ApiException as error:
            return error.status == 404
        return False

    reads = (admission.read_validating_webhook_configuration, admission.read_mutating_webhook_configuration)
    def left(selector: str) -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod(NAMESPACE, label_selector=selector).items]

    try:
        # A replica may take its 30 s grace period to stop, and the kubelet its own time on a busy machine.
        wait_for(lambda: not left(SELECTOR), 120, "the operator Pods outlived the uninstall")
        wait_for(lambda: not left(HOOK_SELECTOR), 60, "the uninstall hook's Pod outlived its Job")
    except TimeoutError as error:
        raise AssertionError(f"{error}: {left(SELECTOR)} {left(HOOK_SELECTOR)}\n{pod_diagnosis(core)}") from None
    assert all(gone(read) for read in reads)  # and none came back while the operator stopped
    jobs = kubernetes.client.BatchV1Api(api_client).list_namespaced_job(NAMESPACE).items
    assert jobs == []  # the hook's Job succeeded and was deleted (hook-succeeded)
