"""A local Kubernetes control plane, Prometheus and the simulators, as plain processes.

Why: Ballast is an operator with admission webhooks; its behaviour lives in the
interplay with a real kube-apiserver (schemas, status subresources, owner
references, garbage collection) and a real Prometheus. Machines running the suite
have no Docker (so no kind), so, like controller-runtime's envtest, we run etcd,
kube-apiserver and kube-controller-manager directly, add Prometheus, and fill in
the missing kubelet and users with `podsim` and `trafficsim`.

Every port is picked free at start and every file lives in one state dir, so
several clusters (a developer's `up` and a pytest run) coexist on one machine.

    python -m tests.harness.cluster up|down|status|env [--state-dir DIR] [--node auto|1|0]

`up --node 1` (or `auto`: where the machine can) also starts a real node beside it
(tests/harness/node.py: containerd, kubelet, kube-proxy, kube-scheduler; needs root); `down` stops
that node first when one runs.

From Python: `with LocalCluster(dir) as cluster: cluster.info.kubeconfig ...`
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ballast.webhooks.certs import write_self_signed
from tests.harness import wait_for
from tests.harness.processes import ProcessGroup, log_tail

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE_DIR = REPO_ROOT / ".local"
START_TIMEOUT = 60.0
SERVICE_CIDR = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
"""The `kubernetes` Service's ClusterIP: the first address of SERVICE_CIDR."""
EXTRA_USERS = ("ballast-operator", "alice", "bob")
"""Users besides admin, each with a kubeconfig in the state dir (all cluster-admins here)."""


class ControlPlaneUnavailable(Exception):
    """This machine cannot run the local control plane.

    Raised when a binary can neither be found, built nor installed (e.g. no root
    for apt-get), or a component dies or never becomes ready at start. The message
    carries the reason and, for a failed component, the tail of its log. Tests
    skip on it locally and fail on it in CI.
    """


@dataclass
class ClusterInfo:
    """Where everything of a running cluster is; persisted as `<state_dir>/cluster.json`."""

    state_dir: str
    bin_dir: str
    token: str
    kubeconfig: str
    apiserver_url: str
    prometheus_url: str
    trafficsim_url: str
    ports: dict[str, int]
    # Where pods reach the API server (the `kubernetes` Service's endpoint); "" on a machine without
    # a default route, where the API server stays on loopback and pods cannot call it.
    host_address: str = ""
    pids: dict[str, int] = field(default_factory=dict)
    # The exact command line of each pid: a pid whose cmdline differs was reused
    # by an unrelated process and must never be signalled.
    argv: dict[str, list[str]] = field(default_factory=dict)
    scrape_targets: dict[str, list[str]] = field(default_factory=dict)  # job -> [host:port, path]
    scrape_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # job -> a whole scrape config
    # Further identities (user -> kubeconfig path): the operator gets its own, so the API server tells its
    # writes from a person's, and two people make four-eyes approvals testable.
    user_kubeconfigs: dict[str, str] = field(default_factory=dict)

    @property
    def pod_prometheus_url(self) -> str:
        """Prometheus as pods reach it: pods cannot call the host's loopback, so the host's address."""
        return f"http://{self.host_address}:{self.ports['prometheus']}" if self.host_address else ""


def free_ports(count: int) -> list[int]:
    """Distinct ports the kernel considers free on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:  # all held open together, so no port is handed out twice
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def get_ok(url: str, token: str = "", cafile: Path | None = None) -> requests.Response | None:
    """The response if `url` answers 200, else None (also while nothing listens yet)."""
    if cafile is not None and not cafile.exists():
        return None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.get(url, headers=headers, verify=str(cafile or True), timeout=5)
    except requests.RequestException:
        return None
    return response if response.status_code == 200 else None


def as_root(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return ["sudo", "-n", *command]
    raise ControlPlaneUnavailable(f"`{' '.join(command)}` needs root and passwordless sudo is unavailable")


def ensure_debian_binary(binary: str, package: str) -> str:
    """Path of `binary`, installing Debian package `package` when it is missing."""
    if found := shutil.which(binary):
        return found
    if not shutil.which("apt-get"):
        raise ControlPlaneUnavailable(f"{binary} is not on PATH and there is no apt-get to install {package}")
    install = as_root(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq", package])
    result = subprocess.run(install, capture_output=True, text=True)
    if result.returncode != 0:  # usually a stale package index
        subprocess.run(as_root(["apt-get", "update", "-qq"]), capture_output=True)
        result = subprocess.run(install, capture_output=True, text=True)
    if found := shutil.which(binary):
        return found
    raise ControlPlaneUnavailable(f"installing {package} did not provide {binary}: {result.stderr[-2000:]}")


def kube_bin_dir(log_path: Path) -> Path:
    """Directory with kube-apiserver and kube-controller-manager (built once, then cached)."""
    script = REPO_ROOT / "hack" / "build-control-plane.sh"
    with log_path.open("w") as log:
        result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, stderr=log, text=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise ControlPlaneUnavailable(f"{script} failed (exit {result.returncode}):\n{log_tail(log_path)}")
    return Path(lines[-1])


def host_address() -> str:
    """This machine's IPv4 address on its default route, or "" without one.

    Pods on the real node reach the host there (through the node's bridge), so the API server listens
    on it too and the `kubernetes` Service points at it. Connecting a UDP socket sends nothing.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # TEST-NET-2: any off-link address picks the default route
        except OSError:
            return ""
        address = probe.getsockname()[0]
    return "" if address.startswith("127.") else address


def write_service_account_keys(private: Path, public: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )


class LocalCluster:
    """etcd + kube-apiserver + kube-controller-manager + Prometheus + podsim + trafficsim.

    `start()` reuses a healthy cluster already running in the same state dir (one
    started by `up`), otherwise starts a fresh, empty one. `stop()` kills exactly
    the processes recorded in cluster.json.
    """

    def __init__(self, state_dir: str | Path = DEFAULT_STATE_DIR) -> None:
        self.state_dir = Path(state_dir).resolve()
        self._pki = self.state_dir / "pki"
        self._prometheus_dir = self.state_dir / "prometheus"
        self.processes: ProcessGroup[ClusterInfo] = ProcessGroup(
            self.state_dir / "cluster.json", self.state_dir / "logs", REPO_ROOT, ControlPlaneUnavailable,
            env={"PYTHONUNBUFFERED": "1"},
        )
        self.processes.load(ClusterInfo)

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- lifecycle -----------------------------------------------------------

    @property
    def info(self) -> ClusterInfo | None:
        """Where everything of the running cluster is; None while it is not started."""
        return self.processes.record

    def status(self) -> dict[str, bool]:
        """Component name -> whether its process is alive ({} when not started)."""
        return self.processes.status()

    def healthy(self) -> bool:
        states = self.status()
        return bool(states) and all(states.values()) and self._get("/readyz") is not None

    def start(self, timeout: float = START_TIMEOUT) -> ClusterInfo:
        """Start (or reuse) the cluster; `timeout` bounds each readiness wait."""
        if self.info is not None:
            if self.healthy():
                return self.info
            self.stop()  # leftovers of a cluster that crashed or was half-stopped
        try:
            return self._start_fresh(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop every process this cluster started; False if none was running."""
        if self.info is None:
            return False
        was_running = any(self.status().values())
        self.processes.terminate(list(reversed(self.info.pids)), timeout)
        self.processes.forget()
        return was_running

    def _start_fresh(self, timeout: float) -> ClusterInfo:
        # Fresh data every start: tests expect an empty cluster, and the member
        # URLs etcd stored would not match this start's random ports.
        for stale in ("etcd", "pki", "prometheus", "logs"):
            shutil.rmtree(self.state_dir / stale, ignore_errors=True)
        for directory in (self.state_dir / "logs", self._pki, self._prometheus_dir / "rules"):
            directory.mkdir(parents=True, exist_ok=True)
        bin_dir = kube_bin_dir(self.state_dir / "logs" / "build-control-plane.log")
        etcd = ensure_debian_binary("etcd", "etcd-server")
        names = ("etcd", "etcd_peer", "apiserver", "prometheus", "trafficsim")
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.processes.record = info = ClusterInfo(
            state_dir=str(self.state_dir),
            bin_dir=str(bin_dir),
            token=secrets.token_hex(16),
            kubeconfig=str(self.state_dir / "kubeconfig"),
            apiserver_url=f"https://127.0.0.1:{ports['apiserver']}",
            prometheus_url=f"http://127.0.0.1:{ports['prometheus']}",
            trafficsim_url=f"http://127.0.0.1:{ports['trafficsim']}",
            ports=ports,
            host_address=host_address(),
            scrape_targets={"trafficsim": [f"127.0.0.1:{ports['trafficsim']}", "/metrics"]},
        )
        sa_key, sa_pub = self._pki / "sa.key", self._pki / "sa.pub"
        write_service_account_keys(sa_key, sa_pub)
        tokens = self._pki / "tokens.csv"
        user_tokens = {user: secrets.token_hex(16) for user in EXTRA_USERS}
        tokens.write_text("".join(
            f'{token},{user},{user},"system:masters"\n' for user, token in {"admin": info.token, **user_tokens}.items()
        ))
        tokens.chmod(0o600)

        etcd_url, peer_url = f"http://127.0.0.1:{ports['etcd']}", f"http://127.0.0.1:{ports['etcd_peer']}"
        self.processes.spawn(
            "etcd",
            [
                etcd,
                "--name=ballast",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=ballast={peer_url}",
            ],
        )
        self.processes.wait("etcd", lambda: get_ok(f"{etcd_url}/health"), timeout)
        self.processes.spawn(
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                *self._apiserver_network_flags(),
                f"--secure-port={ports['apiserver']}",
                "--insecure-port=0",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={sa_pub}",
                f"--service-account-signing-key-file={sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
            ],
        )
        self.start_prometheus(timeout)  # boots while the apiserver does
        self.processes.wait("kube-apiserver", lambda: self._get("/readyz"), timeout)
        self._write_kubeconfig(Path(info.kubeconfig), "admin", info.token)
        for user, token in user_tokens.items():
            path = self.state_dir / f"kubeconfig-{user}"
            self._write_kubeconfig(path, user, token)
            info.user_kubeconfigs[user] = str(path)
        self.processes.spawn(
            "kube-controller-manager",
            [
                str(bin_dir / "kube-controller-manager"),
                f"--kubeconfig={info.kubeconfig}",
                f"--service-account-private-key-file={sa_key}",
                f"--root-ca-file={self._ca_file}",
                "--leader-elect=false",
                "--controllers=*",
                # 20 requests/s by default: benchmarks/scale.py's 10,000 Deployments would queue a new
                # Deployment's ReplicaSet behind a quarter of an hour of work.
                "--kube-api-qps=100",
                "--kube-api-burst=200",
                # No serving at all: the defaults (10252/10257) may be taken on this machine.
                "--port=0",
                "--secure-port=0",
            ],
        )
        for simulator, extra in (("podsim", []), ("trafficsim", ["--port", str(ports["trafficsim"])])):
            module = f"tests.harness.{simulator}"
            self.processes.spawn(simulator, [sys.executable, "-m", module, "--kubeconfig", info.kubeconfig, *extra])
        # KCM works once the default ServiceAccount exists and has its token secret
        # (pods are refused by ServiceAccount admission until then).
        default_sa = "/api/v1/namespaces/default/serviceaccounts/default"
        self.processes.wait(
            "kube-controller-manager", lambda: (sa := self._get(default_sa)) and sa.json().get("secrets"), timeout
        )
        self.processes.wait("trafficsim", lambda: get_ok(f"{info.trafficsim_url}/metrics"), timeout)
        return info

    # -- apiserver -----------------------------------------------------------

    @property
    def _ca_file(self) -> Path:
        # The API server's self-signed serving certificate, which is its own CA.
        return self._pki / "apiserver" / "apiserver.crt"

    def _apiserver_network_flags(self) -> list[str]:
        """Listen on loopback, and on the host's address when it has one, so pods on the real node reach
        the API server through the `kubernetes` Service (kube-proxy sends its ClusterIP to the host).

        The serving certificate names every address clients use: 127.0.0.1 (kubeconfigs), the host
        address (the Service's endpoint) and the Service's ClusterIP and DNS names (in-cluster clients).
        """
        assert self.info is not None
        host = self.info.host_address
        names = ["127.0.0.1", "localhost", KUBERNETES_SERVICE_IP, "kubernetes", "kubernetes.default",
                 "kubernetes.default.svc", *([host] if host else [])]
        serving = write_self_signed(self._pki / "apiserver", names)
        serving.certfile.rename(self._ca_file)
        key = serving.keyfile.rename(self._pki / "apiserver" / "apiserver.key")
        tls = [f"--tls-cert-file={self._ca_file}", f"--tls-private-key-file={key}"]
        if not host:
            # The `kubernetes` Service cannot point at a loopback address (validation refuses it, every
            # 10 s in the log); without a host address no pod could reach the API server anyway.
            return [*tls, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
                    "--endpoint-reconciler-type=none"]
        # 0.0.0.0: one listener for loopback and the host address (the port is random and token-guarded).
        return [*tls, "--bind-address=0.0.0.0", f"--advertise-address={host}"]

    def _get(self, path: str) -> requests.Response | None:
        assert self.info is not None
        return get_ok(self.info.apiserver_url + path, self.info.token, self._ca_file)

    def _write_kubeconfig(self, path: Path, user: str, token: str) -> None:
        assert self.info is not None
        ca_data = base64.b64encode(self._ca_file.read_bytes()).decode()
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "ballast",
                    "cluster": {"server": self.info.apiserver_url, "certificate-authority-data": ca_data},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "ballast", "context": {"cluster": "ballast", "user": user}}],
            "current-context": "ballast",
        }
        path.write_text(yaml.safe_dump(kubeconfig))
        path.chmod(0o600)

    # -- prometheus ----------------------------------------------------------

    def start_prometheus(self, timeout: float = START_TIMEOUT) -> None:
        """(Re)start Prometheus on its original port, keeping its data and rules."""
        assert self.info is not None, "cluster not started"
        if "prometheus" in self.info.pids and self.processes.alive("prometheus"):
            return
        self._write_prometheus_config()
        self.processes.spawn(
            "prometheus",
            [
                ensure_debian_binary("prometheus", "prometheus"),
                f"--config.file={self._prometheus_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self._prometheus_dir / 'data'}",
                "--storage.tsdb.retention.time=2h",
                # Pods on the real node reach it at the host's address (ClusterInfo.pod_prometheus_url).
                f"--web.listen-address={'0.0.0.0' if self.info.host_address else '127.0.0.1'}:"
                f"{self.info.ports['prometheus']}",
                "--web.enable-lifecycle",
            ],
        )
        ready_url = f"{self.info.prometheus_url}/-/ready"
        self.processes.wait("prometheus", lambda: get_ok(ready_url), timeout)

    def stop_prometheus(self, timeout: float = 10.0) -> None:
        self.processes.terminate(["prometheus"], timeout)

    def restart(self, component: str, timeout: float = START_TIMEOUT) -> None:
        """Stop a component and start it again with the same command line and data: kube-apiserver as in a
        rolling upgrade, trafficsim as a fleet of pods whose counters start again from zero."""
        assert self.info is not None, "cluster not started"
        info = self.info
        argv = info.argv[component]
        self.processes.terminate([component], 10.0)
        self.processes.spawn(component, argv)
        ready = {"kube-apiserver": lambda: self._get("/readyz"),
                 "trafficsim": lambda: get_ok(f"{info.trafficsim_url}/metrics")}[component]
        self.processes.wait(component, ready, timeout)

    @contextlib.contextmanager
    def paused(self, component: str) -> Iterator[None]:
        """Freeze a component (SIGSTOP) for the block: its port still accepts connections, nothing answers.

        That is how a hung dependency looks to its clients, unlike a stopped one, which refuses at once.
        """
        assert self.info is not None, "cluster not started"
        pid = self.info.pids[component]
        assert self.processes.alive(component), f"{component} is not running"
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    def reload_prometheus(self) -> None:
        """Make Prometheus re-read its config and rule files; raises if it rejects them."""
        assert self.info is not None, "cluster not started"
        response = requests.post(f"{self.info.prometheus_url}/-/reload", timeout=30)
        if response.status_code != 200:
            raise ValueError(f"Prometheus rejected its configuration: {response.text}")

    def write_prometheus_rules(self, name: str, yaml_text: str, timeout: float = 30.0) -> None:
        """Install `<state>/prometheus/rules/<name>.yml`, reload, wait until its groups are loaded."""
        assert self.info is not None, "cluster not started"
        wanted = {group["name"] for group in (yaml.safe_load(yaml_text) or {}).get("groups", [])}
        path = self._prometheus_dir / "rules" / f"{name}.yml"
        path.write_text(yaml_text)
        try:
            self.reload_prometheus()
        except ValueError:
            path.unlink()  # a broken file would make every later reload fail too
            self.reload_prometheus()
            raise
        rules_url = f"{self.info.prometheus_url}/api/v1/rules"

        def loaded() -> bool:
            groups = requests.get(rules_url, timeout=5).json()["data"]["groups"]
            return wanted <= {group["name"] for group in groups}

        wait_for(loaded, timeout, f"Prometheus did not load rule groups {sorted(wanted)}")

    def add_scrape_target(self, job: str, url_hostport: str, metrics_path: str = "/metrics") -> None:
        """Scrape `url_hostport` (e.g. "127.0.0.1:8080") every second as job `job`."""
        assert self.info is not None, "cluster not started"
        self.info.scrape_targets[job] = [url_hostport, metrics_path]
        self.processes.save()
        self._write_prometheus_config()
        self.reload_prometheus()

    def set_scrape_job(self, name: str, job: dict[str, Any] | None) -> None:
        """Scrape with a whole scrape config (service discovery, relabelling) as job `name`; None removes it."""
        assert self.info is not None, "cluster not started"
        if job is None:
            self.info.scrape_jobs.pop(name, None)
        else:
            self.info.scrape_jobs[name] = {**job, "job_name": name}
        self.processes.save()
        self._write_prometheus_config()
        self.reload_prometheus()

    def _write_prometheus_config(self) -> None:
        assert self.info is not None
        config: dict[str, Any] = {
            # 1 s everywhere so tests see new samples and alert states within seconds.
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self._prometheus_dir / "rules" / "*.yml")],
            "scrape_configs": [
                {"job_name": job, "metrics_path": path, "static_configs": [{"targets": [target]}]}
                for job, (target, path) in self.info.scrape_targets.items()
            ] + list(self.info.scrape_jobs.values()),
        }
        (self._prometheus_dir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def start_or_skip(state_dir: str | Path) -> LocalCluster:
    """Start a cluster for a pytest session: skip when the machine cannot, fail in CI."""
    import pytest  # imported here so the CLI does not need pytest

    cluster = LocalCluster(state_dir)
    try:
        cluster.start()
    except ControlPlaneUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"local control plane unavailable: {exc}")
        pytest.skip(f"local control plane unavailable: {exc}")
    return cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=("up", "down", "status", "env"))
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    parser.add_argument("--node", choices=("auto", "1", "0"), default="0",
                        help="up: also start a real node: 1 always (fails where it cannot), auto where this "
                             "machine can (root, cgroups, packages; no other real node), 0 never")
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.state_dir)
    from tests.harness.node import LocalNode, NodeUnavailable, other_nodes, problems  # node.py imports this module

    if args.command == "up":
        reused = cluster.healthy()
        try:
            info = cluster.start()
        except ControlPlaneUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{'Reusing the running' if reused else 'Started a'} local cluster in {info.state_dir}")
        unable = [] if args.node != "auto" else problems() + (
            ["another real node runs on this machine, and one fits (`status` in its state dir shows it)"]
            if other_nodes(cluster.state_dir) else [])
        if unable:
            print(f"  No real node (pods stay simulated): {'; '.join(unable)}")
        elif args.node != "0":
            node = LocalNode(cluster)
            try:
                node.start()
            except NodeUnavailable as exc:
                print(f"error: real node: {exc}", file=sys.stderr)
                return 1
            print(f"  Real node {node.name} is Ready; real pods need its toleration (tests/harness/node.py)")
        print(f"  export KUBECONFIG={info.kubeconfig}")
        print(f"  Prometheus: {info.prometheus_url}   (export BALLAST_PROMETHEUS_URL={info.prometheus_url})")
        print(f"  Stop it with: python -m tests.harness.cluster down --state-dir {info.state_dir}")
    elif args.command == "down":
        LocalNode(cluster).stop()  # before the API server goes: it drains the node's pods first
        print("Stopped." if cluster.stop() else "Not running.")
    elif args.command == "status":
        if cluster.info is None:
            print("Not running.")
            return 1
        states = cluster.status()
        node = LocalNode(cluster)
        node_states = node.status()
        for name, alive in states.items():
            print(f"{name:<24} pid {cluster.info.pids[name]:<8} {'running' if alive else 'DEAD'}")
        for name, alive in node_states.items():
            assert node.info is not None
            print(f"node: {name:<18} pid {node.info.pids[name]:<8} {'running' if alive else 'DEAD'}")
        states = {**states, **{f"node/{name}": alive for name, alive in node_states.items()}}
        print(f"apiserver {cluster.info.apiserver_url}  prometheus {cluster.info.prometheus_url}")
        return 0 if all(states.values()) else 1
    elif cluster.info is None:
        print("Not running; start it with: python -m tests.harness.cluster up", file=sys.stderr)
        return 1
    else:
        print(f"export KUBECONFIG={cluster.info.kubeconfig}")
        print(f"export BALLAST_PROMETHEUS_URL={cluster.info.prometheus_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
