"""Run the real operator as a child process, the way tests, the demo and the benchmarks need it.

It runs as its own identity (the harness's `ballast-operator` user, like a ServiceAccount in a cluster)
so admission tells its writes from people's, with webhooks, metrics and the health probe on free
loopback ports, and with short refresh intervals so tests never wait long for clock-driven state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.harness import wait_for
from tests.harness.cluster import REPO_ROOT, ClusterInfo, free_ports


class OperatorProcess:
    """A real `ballast operator run` process that tests can stop and start again."""

    def __init__(self, cluster: ClusterInfo, log_path: Path, kubeconfig: str | None = None,
                 extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.env = env or {}
        metrics_port, webhook_port, health_port = free_ports(3)
        self.ready_url = f"http://127.0.0.1:{health_port}/readyz"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.webhook_url = f"https://127.0.0.1:{webhook_port}"
        self.cert_dir = log_path.parent / "webhook-certs"
        """The operator makes its self-signed serving certificate here; tests verify TLS against it."""
        self.command = [
            sys.executable, "-m", "ballast.cli.main", "operator", "run",
            # Its own identity, as in a cluster (a ServiceAccount): admission tells its writes from people's.
            "--kubeconfig", kubeconfig or cluster.user_kubeconfigs["ballast-operator"],
            "--operator-namespace", "ballast-system",
            "--prometheus-url", cluster.prometheus_url,
            "--health-address", "127.0.0.1",
            "--health-port", str(health_port),
            "--metrics-address", "127.0.0.1",
            "--metrics-port", str(metrics_port),
            "--webhook-port", str(webhook_port),
            "--webhook-address", "127.0.0.1",
            "--webhook-cert-dir", str(self.cert_dir),
            "--resync-seconds", "2",
            "--prometheus-refresh-seconds", "1",
            *extra_args,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def ready(self) -> bool:
        """Ready: its indexes are filled and its webhook server listens, leader or follower alike."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"operator is not running:\n{self.log_tail()}")
        try:
            return requests.get(self.ready_url, timeout=1).ok
        except requests.RequestException:
            return False

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        wait_for(self.ready, timeout, "operator never became ready")

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
