"""Fixtures for integration tests: one real local control plane per session, one namespace per test.

The control plane (etcd, kube-apiserver, kube-controller-manager, Prometheus, simulators) starts once;
the CRDs from ``crds/`` are applied once; the operator runs as a real ``ballast operator run`` process
against it. Tests skip only when the control plane cannot be obtained, and fail instead under CI=true.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import requests
import yaml

from tests.harness import wait_for
from tests.harness.cluster import ClusterInfo, LocalCluster, start_or_skip

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"


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
    """Apply every CRD in crds/ and wait until the API server serves them."""
    ext = kubernetes.client.ApiextensionsV1Api(api_client)
    names = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        names.append(body["metadata"]["name"])
        try:
            ext.create_custom_resource_definition(body)
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise

    def established() -> bool:
        for name in names:
            conditions = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                return False
        return True

    wait_for(established, 30, "CRDs never became Established")
    return names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OperatorProcess:
    """A real `ballast operator run` process that tests can stop and start again."""

    def __init__(self, cluster: ClusterInfo, log_path: Path) -> None:
        self.log_path = log_path
        metrics_port, webhook_port = free_port(), free_port()
        self.health_url = f"http://127.0.0.1:{free_port()}/healthz"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.webhook_url = f"https://127.0.0.1:{webhook_port}"
        self.cert_dir = log_path.parent / "webhook-certs"
        """The operator makes its self-signed serving certificate here; tests verify TLS against it."""
        self.command = [
            sys.executable, "-m", "ballast.cli.main", "operator", "run",
            # Its own identity, as in a cluster (a ServiceAccount): admission tells its writes from people's.
            "--kubeconfig", cluster.user_kubeconfigs["ballast-operator"],
            "--operator-namespace", "ballast-system",
            "--prometheus-url", cluster.prometheus_url,
            "--liveness", self.health_url,
            "--metrics-address", "127.0.0.1",
            "--metrics-port", str(metrics_port),
            "--webhook-port", str(webhook_port),
            "--webhook-address", "127.0.0.1",
            "--webhook-cert-dir", str(self.cert_dir),
            "--resync-seconds", "2",
            "--prometheus-refresh-seconds", "1",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def healthy(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"operator is not running:\n{self.log_tail()}")
        try:
            return requests.get(self.health_url, timeout=1).ok
        except requests.RequestException:
            return False

    def start(self) -> None:
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_for(self.healthy, 60, "operator never became healthy")

    def kill(self) -> None:
        """SIGKILL: the operator gets no chance to tidy up, as in a node failure or an OOM kill."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


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
