"""Fixtures for integration tests: one real local control plane per session, one namespace per test.

The control plane (etcd, kube-apiserver, kube-controller-manager, Prometheus, simulators) starts once;
the CRDs from ``crds/`` are applied once; the operator runs as a real ``ballast operator run`` process
against it. Tests skip only when the control plane cannot be obtained, and fail instead under CI=true.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from ballast.api.common import GROUP, VERSION
from tests.harness.cluster import ClusterInfo, LocalCluster, start_or_skip
from tests.harness.crds import install_crds
from tests.harness.node import LocalNode, start_node_or_skip
from tests.harness.operator import OperatorProcess
from tests.integration.releasing import govern

REPO_ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_or_skip(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def cluster(local_cluster: LocalCluster) -> ClusterInfo:
    return local_cluster.info


@pytest.fixture(scope="module")
def real_node(local_cluster: LocalCluster) -> Iterator[LocalNode]:
    """A real node (containerd, kubelet, kube-proxy, kube-scheduler) beside the session's cluster.

    Opt-in and per module: kube-scheduler runs only while the module that asked for it does, so the
    rest of the suite's simulated pods never meet a scheduler. Skips with the reason where the machine
    cannot run it (not root, no cgroups, packages missing); fails instead under CI=true. Pods run on it
    only with tests.harness.node.REAL_POD_PLACEMENT (the toleration of its taint)."""
    node = start_node_or_skip(local_cluster)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def api_client(cluster: ClusterInfo) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=cluster.kubeconfig)


@pytest.fixture(scope="session")
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps(api_client: kubernetes.client.ApiClient) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(api_client)


@pytest.fixture(scope="session")
def custom(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client)


@pytest.fixture(scope="session")
def crds(api_client: kubernetes.client.ApiClient) -> list[str]:
    """Every CRD in crds/, served by the API server."""
    return install_crds(api_client)


@pytest.fixture(scope="session")
def operator(cluster: ClusterInfo, crds: list[str], tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[OperatorProcess]:
    """The operator, running against the session's cluster with webhooks on a free local port."""
    process = OperatorProcess(cluster, tmp_path_factory.mktemp("operator") / "operator.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def namespace(core: kubernetes.client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace per test, labelled so ReleasePolicies in tests can select it."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name, "labels": {"ballast.dev/test-ns": name}}})
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture
def governed(custom, namespace, apps, operator):
    """A namespace under a fast policy, with a 3-replica Deployment 'shop' that the low tier owns."""
    name = govern(custom, apps, namespace)
    yield namespace
    custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)
