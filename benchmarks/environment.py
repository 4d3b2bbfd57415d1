"""The setting every benchmark runs in: a local cluster with the CRDs and a running operator.

A fresh cluster in a temporary directory is stopped afterwards (and its directory removed when the run
went well, kept for its logs when not); a healthy cluster already running in ``--state-dir`` is reused
and left running, minus the policies and namespaces the benchmark created.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes

from ballast.api.common import GROUP, VERSION
from tests.harness.cluster import ClusterInfo, LocalCluster
from tests.harness.crds import install_crds
from tests.harness.operator import OperatorProcess


@dataclass
class Environment:
    info: ClusterInfo
    api: kubernetes.client.ApiClient
    operator: OperatorProcess
    state_dir: Path
    ok: bool = False
    """Set by the benchmark when its run went well; decides whether the logs are kept."""


@contextlib.contextmanager
def environment(state_dir: str | None, policies: Iterable[str], namespaces: Iterable[str],
                start_operator: bool = True) -> Iterator[Environment]:
    """Yield a ready cluster and operator (started, unless the benchmark starts it itself); tidy up as
    described in the module docstring."""
    directory = Path(state_dir or tempfile.mkdtemp(prefix="ballast-bench-"))
    cluster = LocalCluster(directory)
    reused = cluster.healthy()
    operator: OperatorProcess | None = None
    env: Environment | None = None
    try:
        print(f"starting the local control plane in {directory} (a first build takes ~5 min) ...", flush=True)
        info = cluster.start()
        api = kubernetes.config.new_client_from_config(config_file=info.kubeconfig)
        install_crds(api)
        operator = OperatorProcess(info, directory / "operator.log")
        if start_operator:
            operator.start()
        env = Environment(info, api, operator, directory)
        yield env
    finally:
        if operator is not None:
            operator.stop()
        if reused:
            api = kubernetes.config.new_client_from_config(config_file=cluster.info.kubeconfig)
            for policy in policies:
                with contextlib.suppress(kubernetes.client.ApiException):
                    kubernetes.client.CustomObjectsApi(api).delete_cluster_custom_object(
                        GROUP, VERSION, "releasepolicies", policy)
            for namespace in namespaces:
                with contextlib.suppress(kubernetes.client.ApiException):
                    kubernetes.client.CoreV1Api(api).delete_namespace(namespace)
        else:
            cluster.stop()
            if env is not None and env.ok and state_dir is None:
                shutil.rmtree(directory, ignore_errors=True)
            else:
                print(f"logs kept in {directory}", file=sys.stderr)
