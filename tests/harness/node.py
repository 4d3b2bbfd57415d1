"""A real node beside a running LocalCluster: containerd, the CNI bridge, kubelet, kube-proxy, kube-scheduler.

Why: podsim only writes pod statuses. Readiness probes, container start-up, pod IPs and kube-proxy's
Service load balancing are real only when a kubelet runs real containers. This module runs one such
node on this machine with plain processes, the way `cluster.py` runs the control plane: containerd
with its own root, state and socket under `<cluster state dir>/node`, images imported from
`images.py` (no registry), and the three Kubernetes binaries from `hack/build-node.sh`. The values
that matter on these VMs are in `../shared/spec/real-node.md` (e.g. `restrict_oom_score_adj`).

Real and simulated pods never meet: the node is tainted `ballast.dev/real-node=true:NoSchedule`
(podwatch.REAL_NODE_TAINT), so kube-scheduler binds only pods that tolerate it, and the simulators
skip exactly those pods. A real-pod workload opts in with the toleration and the node selector of
`REAL_POD_PLACEMENT`.

`stop()` leaves nothing behind: it drains the node, stops kubelet, kills and deletes containerd's tasks
and containers, stops containerd, runs `kube-proxy --cleanup`, then removes what is still there
relative to what `start()` saw: mounts under the node's dir, network namespaces, KUBE-*/CNI-*
iptables rules and chains, kubelet's pod log dirs in /var/log/pods, the bridge and host-local IPAM state.

Needs root, cgroups and the Debian packages in `REQUIRED`; `problems()` says what is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import urllib3
import yaml

from tests.harness import images, podsd, wait_for
from tests.harness.cluster import REPO_ROOT, LocalCluster, free_ports, get_ok
from tests.harness.podwatch import REAL_NODE_TAINT
from tests.harness.processes import ProcessGroup, log_tail

NODE_NAME = "ballast-node"
POD_CIDR = "10.88.0.0/16"
BRIDGE = "ballast0"
CNI_NETWORK = "ballast"
NETNS_DIR = Path("/var/run/netns")  # containerd 1.6 mounts pod network namespaces here
POD_LOGS_DIR = Path("/var/log/pods")  # kubelet 1.20 writes container logs here (not configurable)
CNI_BIN_DIR = Path("/usr/lib/cni")
START_TIMEOUT = 120.0
POD_SCRAPE_JOB = "pods"
"""The Prometheus job of the node's pods: the kind demo's `pods` job, fed by podsd (see there)."""

REAL_POD_PLACEMENT: dict[str, Any] = {
    "tolerations": [{"key": REAL_NODE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
    "nodeSelector": {REAL_NODE_TAINT: "true"},
}
"""Merge into a pod spec to run the pod on the real node (and keep the simulators off it)."""

REQUIRED = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
}
"""Binary -> Debian package; plus the CNI plugins and /bin/busybox checked in problems()."""

IPTABLES_TABLES = ("filter", "nat", "mangle")
OWNED_PREFIXES = ("KUBE-", "CNI-")
"""iptables chains kubelet, kube-proxy and the CNI plugins create; stop() removes the new ones."""


class NodeUnavailable(Exception):
    """This machine cannot run the real node: not root, no cgroups, a package or the node build is
    missing, or a component died or never became ready at start (the message has its log tail)."""


@dataclass
class NodeInfo:
    """A running node's processes and what the host looked like before it; `<dir>/node.json`."""

    name: str
    dir: str
    bin_dir: str
    containerd_socket: str
    ports: dict[str, int]
    baseline: dict[str, Any]
    pids: dict[str, int] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)


def problems() -> list[str]:
    """Why this machine cannot run the node (empty when it can)."""
    found = []
    if os.geteuid() != 0:
        found.append("the real node needs root (containerd, iptables, network namespaces)")
    if not Path("/sys/fs/cgroup/memory").is_dir() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        found.append("no cgroup filesystem under /sys/fs/cgroup")
    for binary, package in REQUIRED.items():
        if not shutil.which(binary, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"):
            found.append(f"{binary} is missing (Debian package {package})")
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        if not (CNI_BIN_DIR / plugin).exists():
            found.append(f"CNI plugin {plugin} is missing (Debian package containernetworking-plugins)")
    if not images.busybox_available():
        found.append(f"{images.BUSYBOX} is missing (Debian package busybox-static)")
    return found


def other_nodes(own_state_dir: Path) -> list[str]:
    """Command lines of real-node processes (kubelet, kube-proxy, kube-scheduler are started with our node
    name; containerd with a config under some `node/` dir) that belong to another cluster's state dir.

    One machine fits one real node: they would share the bridge, the iptables rules and the node name.
    Two at once (two test sessions) made a pod hang unscheduled and left iptables chains behind.
    """
    own = f"{own_state_dir}/"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0")[:-1]]
            if not argv:
                continue
            is_node = f"--hostname-override={NODE_NAME}" in argv or (
                Path(argv[0]).name == "containerd" and any(a.endswith("/node/containerd/config.toml") for a in argv))
            if is_node and not any(own in a for a in argv):
                found.append(f"pid {proc.name}: {' '.join(argv)[:200]}")
    return found


def node_bin_dir(log_path: Path) -> Path:
    """Directory with kubelet, kube-proxy and kube-scheduler (built once, then cached; ~9 min cold)."""
    script = REPO_ROOT / "hack" / "build-node.sh"
    with log_path.open("w") as log:
        result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, stderr=log, text=True)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise NodeUnavailable(f"{script} failed (exit {result.returncode}):\n{log_tail(log_path)}")
    return Path(lines[-1])


# -- host state: what start() saw, so stop() removes exactly what the node added ----------------------

def iptables_rules() -> dict[str, dict[str, list[str]]]:
    """`<tool> -t <table> -S` lines for iptables and ip6tables (tools that fail are left out)."""
    rules: dict[str, dict[str, list[str]]] = {}
    for tool in ("iptables", "ip6tables"):
        for table in IPTABLES_TABLES:
            result = subprocess.run([tool, "-w", "-t", table, "-S"], capture_output=True, text=True)
            if result.returncode == 0:
                rules.setdefault(tool, {})[table] = result.stdout.splitlines()
    return rules


def network_namespaces() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest first."""
    prefix = str(directory.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(points, key=lambda p: p.count("/"), reverse=True)


def pod_log_dirs() -> list[str]:
    return sorted(p.name for p in POD_LOGS_DIR.iterdir()) if POD_LOGS_DIR.is_dir() else []


def host_snapshot() -> dict[str, Any]:
    return {"iptables": iptables_rules(), "netns": network_namespaces(), "pod_logs": pod_log_dirs()}


def owned(line: str) -> bool:
    return any(prefix in line for prefix in OWNED_PREFIXES)


def restore_iptables(before: dict[str, dict[str, list[str]]]) -> None:
    """Delete the KUBE-*/CNI-* rules and chains that are not in `before` (a iptables_rules() result)."""
    for tool, tables in iptables_rules().items():
        for table, lines in tables.items():
            old = set(before.get(tool, {}).get(table, []))
            new = [line for line in lines if line not in old and owned(line)]
            for line in new:
                if line.startswith("-A "):
                    subprocess.run([tool, "-w", "-t", table, "-D", *shlex.split(line)[1:]], capture_output=True)
            chains = [line.split()[1] for line in new if line.startswith("-N ")]
            for flag in ("-F", "-X"):  # flush all first: new chains may jump to each other
                for chain in chains:
                    subprocess.run([tool, "-w", "-t", table, flag, chain], capture_output=True)


# -- the node ---------------------------------------------------------------------------------------

class LocalNode:
    """One real node for a running LocalCluster; state in `<cluster state dir>/node`.

    Like LocalCluster, `stop()` signals only the pids recorded in node.json whose command line is
    still the one started, so it also stops a node started by another process (`make cluster-up NODE=1`).
    """

    def __init__(self, cluster: LocalCluster, name: str = NODE_NAME) -> None:
        self.cluster = cluster
        self.name = name
        self.dir = cluster.state_dir / "node"
        self.processes: ProcessGroup[NodeInfo] = ProcessGroup(
            self.dir / "node.json", self.dir / "logs", self.dir, NodeUnavailable, poll_interval=0.2)
        self.processes.load(NodeInfo)
        self._session = requests.Session()
        self.ready_seconds: float | None = None
        """Seconds from start() to the Node being Ready (set by a fresh start)."""

    # -- API helpers ----------------------------------------------------------------------------------

    def _api(self, method: str, path: str, content_type: str = "application/json", **kwargs: Any
             ) -> requests.Response | None:
        """An API call as admin, or None when the API server is unreachable."""
        info = self.cluster.info
        if info is None:
            return None
        ca = self.cluster.state_dir / "pki" / "apiserver" / "apiserver.crt"
        headers = {"Authorization": f"Bearer {info.token}", "Content-Type": content_type}
        try:
            return self._session.request(method, info.apiserver_url + path, timeout=10, verify=str(ca),
                                         headers=headers, **kwargs)
        except requests.RequestException:
            return None

    def node_object(self) -> dict[str, Any] | None:
        response = self._api("GET", f"/api/v1/nodes/{self.name}")
        return response.json() if response is not None and response.status_code == 200 else None

    def ready(self) -> bool:
        node = self.node_object()
        conditions = (node or {}).get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def schedulable(self) -> bool:
        """Ready, and no taint left but ours: the node lifecycle controller removes `not-ready` a few
        seconds after Ready. A pod that meets the node before that waits in kube-scheduler's
        unschedulable queue for up to ~90 s, so start() returns only once this holds."""
        node = self.node_object()
        taints = {t["key"] for t in (node or {}).get("spec", {}).get("taints") or []}
        return self.ready() and taints == {REAL_NODE_TAINT} and not node["spec"].get("unschedulable")

    def _pods_on_node(self) -> list[dict[str, Any]]:
        response = self._api("GET", "/api/v1/pods", params={"fieldSelector": f"spec.nodeName={self.name}"})
        return response.json()["items"] if response is not None and response.status_code == 200 else []

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def ctr(self) -> list[str]:
        """The ctr command for this node's containerd, in the CRI namespace."""
        socket = self.info.containerd_socket if self.info else str(self.dir / "containerd" / "containerd.sock")
        return ["ctr", "--address", socket, "--namespace", "k8s.io"]

    @property
    def info(self) -> NodeInfo | None:
        """The running node's processes and host baseline; None while it is not started."""
        return self.processes.record

    def status(self) -> dict[str, bool]:
        return self.processes.status()

    def start(self, timeout: float = START_TIMEOUT) -> NodeInfo:
        """Start the node and wait until it is Ready; reuses a healthy one already running here."""
        if self.cluster.info is None:
            raise NodeUnavailable("the local cluster is not running")
        if self.info is not None:
            if all(self.status().values()) and self.ready():
                return self.info
            self.stop()
        if found := problems():
            raise NodeUnavailable("; ".join(found))
        if others := other_nodes(self.cluster.state_dir):
            raise NodeUnavailable("another real node runs on this machine (one fits):\n" + "\n".join(others))
        try:
            return self._start_fresh(timeout)
        except BaseException:
            self.stop()
            raise

    def _start_fresh(self, timeout: float) -> NodeInfo:
        started = time.monotonic()
        for stale in self.dir.glob("*"):  # logs stay (appended to) for a post-mortem of an earlier run
            if stale.is_dir() and stale.name != "logs":
                shutil.rmtree(stale, ignore_errors=True)
            elif stale.is_file():
                stale.unlink()
        for sub in ("logs", "containerd", "cni/net.d", "cni/ipam", "kubelet", "images"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        bin_dir = node_bin_dir(self.dir / "logs" / "build-node.log")
        names = ("kubelet", "kubelet_healthz", "proxy_healthz", "proxy_metrics", "scheduler", "pod_discovery")
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        socket = self.dir / "containerd" / "containerd.sock"
        self.processes.record = NodeInfo(name=self.name, dir=str(self.dir), bin_dir=str(bin_dir),
                                         containerd_socket=str(socket), ports=ports, baseline=host_snapshot())
        self.processes.save()
        kubeconfig = self.cluster.info.kubeconfig  # admin (system:masters): enough for a local test node

        self._write_cni_config()
        self.processes.spawn("containerd", ["containerd", "--config", str(self._write_containerd_config())])
        self.processes.wait(
            "containerd", lambda: subprocess.run([*self.ctr, "version"], capture_output=True).returncode == 0, timeout)
        images.import_images(self.ctr, [images.PAUSE, images.BUSYBOX_SHELL], self.dir / "images")

        self.processes.spawn("kube-scheduler", [
            str(bin_dir / "kube-scheduler"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false", "--port=0", "--bind-address=127.0.0.1", f"--secure-port={ports['scheduler']}",
            f"--cert-dir={self.dir / 'scheduler-certs'}",
        ])
        self.processes.spawn("kube-proxy", [
            str(bin_dir / "kube-proxy"), f"--kubeconfig={kubeconfig}", f"--hostname-override={self.name}",
            "--proxy-mode=iptables", f"--cluster-cidr={POD_CIDR}",
            # 0: leave the host's conntrack sysctls alone (kube-proxy then writes none).
            "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
            "--conntrack-tcp-timeout-close-wait=0",
            f"--healthz-bind-address=127.0.0.1:{ports['proxy_healthz']}",
            f"--metrics-bind-address=127.0.0.1:{ports['proxy_metrics']}",
        ])
        self.processes.spawn("kubelet", [
            str(bin_dir / "kubelet"), f"--config={self._write_kubelet_config()}", f"--kubeconfig={kubeconfig}",
            "--container-runtime=remote", f"--container-runtime-endpoint=unix://{socket}",
            f"--root-dir={self.dir / 'kubelet'}", f"--cert-dir={self.dir / 'kubelet' / 'pki'}",
            f"--hostname-override={self.name}",
            f"--register-with-taints={REAL_NODE_TAINT}=true:NoSchedule",
            f"--node-labels={REAL_NODE_TAINT}=true",
        ])
        self.processes.wait("kubelet", self.ready, timeout)
        self.ready_seconds = time.monotonic() - started
        self.processes.wait("kubelet", self.schedulable, timeout)
        self.processes.wait("kube-proxy", lambda: get_ok(f"http://127.0.0.1:{ports['proxy_healthz']}/healthz"), timeout)
        self.processes.wait("kube-scheduler", self._scheduler_healthy, timeout)
        self._start_pod_discovery(kubeconfig, timeout)
        return self.info

    def _start_pod_discovery(self, kubeconfig: str, timeout: float) -> None:
        """Let the cluster's Prometheus find and scrape this node's pods as a user's Prometheus would (podsd)."""
        assert self.info is not None and self.cluster.info is not None
        url = f"http://127.0.0.1:{self.info.ports['pod_discovery']}{podsd.SD_PATH}"
        self.processes.spawn("pod-discovery", [
            # A script (the node's cwd is no package root); -P: without its dir on sys.path, where
            # tests/harness/operator.py would shadow the standard library's operator module.
            sys.executable, "-P", podsd.__file__, "--kubeconfig", kubeconfig,
            "--port", str(self.info.ports["pod_discovery"]), "--node", self.name,
        ])
        self.processes.wait("pod-discovery", lambda: get_ok(url), timeout)
        self.cluster.set_scrape_job(POD_SCRAPE_JOB, podsd.pods_scrape_config(url))

    def _scheduler_healthy(self) -> bool:
        assert self.info is not None
        with warnings_off():
            try:
                url = f"https://127.0.0.1:{self.info.ports['scheduler']}/healthz"
                return requests.get(url, verify=False, timeout=5).status_code == 200
            except requests.RequestException:
                return False

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the node and remove everything it added to the host; False if it was not running."""
        if self.info is None:
            return False
        info = self.info
        was_running = any(self.status().values())
        self._drain(timeout)
        if self.cluster.info is not None and POD_SCRAPE_JOB in self.cluster.info.scrape_jobs:
            with contextlib.suppress(requests.RequestException):  # Prometheus may be gone with its cluster
                self.cluster.set_scrape_job(POD_SCRAPE_JOB, None)
        self.processes.terminate(["pod-discovery", "kube-scheduler", "kubelet"], 10.0)
        if self.processes.alive("containerd"):
            self._remove_containers()
        self.processes.terminate(["containerd"], 10.0)
        self._kill_shims(10.0)
        self.processes.terminate(["kube-proxy"], 10.0)
        proxy = Path(info.bin_dir) / "kube-proxy"
        if proxy.exists():
            subprocess.run([str(proxy), "--cleanup"], capture_output=True)
        # What the graceful path missed (a crash, an unreachable API server): undo by comparing with start.
        for point in mounts_under(self.dir):
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
        for netns in set(network_namespaces()) - set(info.baseline.get("netns", [])):
            subprocess.run(["umount", str(NETNS_DIR / netns)], capture_output=True)
            (NETNS_DIR / netns).unlink(missing_ok=True)
        restore_iptables(info.baseline.get("iptables", {}))
        for logs in set(pod_log_dirs()) - set(info.baseline.get("pod_logs", [])):
            shutil.rmtree(POD_LOGS_DIR / logs, ignore_errors=True)
        if Path(f"/sys/class/net/{BRIDGE}").exists():
            subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
        for sub in ("cni", "containerd", "kubelet", "images", "scheduler-certs"):
            shutil.rmtree(self.dir / sub, ignore_errors=True)
        self._forget_in_api()
        self.processes.forget()
        return was_running

    def _drain(self, timeout: float) -> None:
        """Cordon the node and delete its pods while kubelet runs, so it tears their sandboxes down
        through CNI (veth, IP, netns) instead of leaving them to the brute-force cleanup."""
        if not self.processes.alive("kubelet") or self.node_object() is None:
            return
        self._api("PATCH", f"/api/v1/nodes/{self.name}", json={"spec": {"unschedulable": True}},
                  content_type="application/merge-patch+json")
        for pod in self._pods_on_node():
            meta = pod["metadata"]
            self._api("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                      json={"gracePeriodSeconds": 1})
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not self._pods_on_node(), timeout, "pods on the node were not removed", interval=0.5)

    def _remove_containers(self) -> None:
        ctr = self.ctr
        for task in self._ctr_ids(["tasks", "ls", "-q"]):
            subprocess.run([*ctr, "tasks", "kill", "-s", "SIGKILL", task], capture_output=True)
            with contextlib.suppress(TimeoutError):
                wait_for(lambda t=task: subprocess.run([*ctr, "tasks", "delete", t], capture_output=True).returncode
                         == 0, 10.0, f"task {task} not deleted", interval=0.2)
        for container in self._ctr_ids(["containers", "ls", "-q"]):
            subprocess.run([*ctr, "containers", "delete", container], capture_output=True)

    def _ctr_ids(self, command: list[str]) -> list[str]:
        result = subprocess.run([*self.ctr, *command], capture_output=True, text=True)
        return result.stdout.split() if result.returncode == 0 else []

    def shim_pids(self) -> list[int]:
        """containerd-shim processes serving this node's containerd (they outlive it unless tasks end)."""
        assert self.info is not None
        needle = self.info.containerd_socket.encode()
        pids = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    cmdline = (proc / "cmdline").read_bytes()
                    if b"containerd-shim" in cmdline and needle in cmdline:
                        pids.append(int(proc.name))
        return pids

    def _kill_shims(self, timeout: float) -> None:
        for pid in self.shim_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: not self.shim_pids(), timeout, "containerd shims did not exit", interval=0.1)

    def _forget_in_api(self) -> None:
        """Delete the Node and force-delete pods still bound to it (nothing will ever confirm them)."""
        for pod in self._pods_on_node():
            meta = pod["metadata"]
            self._api("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                      json={"gracePeriodSeconds": 0})
        if self.node_object() is not None:
            self._api("DELETE", f"/api/v1/nodes/{self.name}")

    # -- config files ---------------------------------------------------------------------------------

    def _write_cni_config(self) -> None:
        conflist = {
            "cniVersion": "0.4.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                    "ipam": {"type": "host-local", "subnet": POD_CIDR, "routes": [{"dst": "0.0.0.0/0"}],
                             # IPAM state in the node's dir, so stop() can drop leaked leases with it.
                             "dataDir": str(self.dir / "cni" / "ipam")},
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"},
            ],
        }
        (self.dir / "cni" / "net.d" / "10-ballast.conflist").write_text(json.dumps(conflist, indent=2))

    def _write_containerd_config(self) -> Path:
        base = self.dir / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{base / 'root'}"
state = "{base / 'state'}"
[grpc]
  address = "{base / 'containerd.sock'}"
[ttrpc]
  address = "{base / 'containerd.sock.ttrpc'}"
[{cri}]
  sandbox_image = "{images.PAUSE_IMAGE}"
  # This VM refuses negative oom_score_adj; without this every sandbox fails in runc.
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{self.dir / 'cni' / 'net.d'}"
"""
        path = base / "config.toml"
        path.write_text(config)
        return path

    def _write_kubelet_config(self) -> Path:
        assert self.info is not None
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "resolvConf": "",
            "address": "127.0.0.1",
            "port": self.info.ports["kubelet"],
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.info.ports["kubelet_healthz"],
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            # The imported images are the only copies (no registry): image GC must never remove them.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
        }
        path = self.dir / "kubelet-config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path


@contextlib.contextmanager
def warnings_off() -> Any:
    """Silence urllib3's warning for the one unverified call (kube-scheduler's self-signed healthz)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        yield


def start_node_or_skip(cluster: LocalCluster) -> LocalNode:
    """Start the real node for a pytest module: skip with the reason locally, fail under CI=true."""
    import pytest  # only tests call this

    node = LocalNode(cluster)
    try:
        node.start()
    except NodeUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"real node unavailable: {exc}")
        pytest.skip(f"real node unavailable: {exc}")
    return node
