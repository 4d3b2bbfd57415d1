"""Scale: 2,000 governed Deployments in 200 namespaces, and what the operator costs there.

    python -m benchmarks.scale [--namespaces 200] [--per-namespace 10] [--replicas 0] [--idle 30]
                               [--state-dir DIR]

The cluster is populated before the operator starts: ``--namespaces`` namespaces selected by one
ReleasePolicy (Enforce), each with ``--per-namespace`` Deployments that carry the ownership annotations
and one ServiceOwnership per Deployment. Then a real ``ballast operator run`` is spawned, and from that
moment the script measures:

- ready: ``/readyz`` answers 200, i.e. kopf has listed every watched kind and filled its indexes, so
  admission judges with full knowledge (target: within 60 s);
- settled: every ServiceOwnership's status counts its Deployment for the current generation, and the
  policy's status governs every namespace;
- memory: the operator's VmRSS once settled and after ``--idle`` quiet seconds, and its peak (VmHWM)
  (target: under 300 MiB);
- admission with full indexes: 50 sequential server-side dry-run creates in a governed namespace
  (client-side latency, for orientation; ``benchmarks.admission_latency`` is the real measurement).

``--replicas 0`` by default: the operator watches Deployments, not Pods, while 2,000 simulated Pods would
make kube-controller-manager (20 API requests/s) and the pod simulator the bottleneck of a 2-core
machine rather than the operator. Not a test: it prints figures and PASS/MISS, and exits 1 only when
the run itself failed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes
import requests

from ballast.api.common import GROUP, VERSION
from benchmarks.admission_latency import percentile
from benchmarks.environment import environment
from tests.harness import wait_for
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy, service_ownership

POLICY = "bench-scale"
LABEL = "ballast.dev/bench-scale"
READY_TARGET_S = 60.0
RSS_TARGET_MIB = 300.0


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def populate(kubeconfig: str, namespaces: list[str], per_namespace: int, replicas: int) -> float:
    """Create the namespaces, the ServiceOwnerships and the Deployments; returns the seconds it took."""
    local = threading.local()

    def apis() -> tuple[kubernetes.client.AppsV1Api, kubernetes.client.CustomObjectsApi]:
        if not hasattr(local, "apis"):
            client = kubernetes.config.new_client_from_config(config_file=kubeconfig)
            local.apis = kubernetes.client.AppsV1Api(client), kubernetes.client.CustomObjectsApi(client)
        return local.apis

    def fill(namespace: str) -> None:
        apps, custom = apis()
        for i in range(per_namespace):
            labels = {"app": f"svc-{i}"}
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                                   service_ownership(f"svc-{i}", labels))
            apps.create_namespaced_deployment(namespace, deployment(f"svc-{i}", labels, replicas=replicas,
                                                                    annotations=OWNERSHIP_ANNOTATIONS))

    started = time.monotonic()
    core = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=kubeconfig))
    for namespace in namespaces:
        core.create_namespace({"metadata": {"name": namespace, "labels": {LABEL: "true"}}})
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(fill, namespaces))
    return time.monotonic() - started


def settled(custom: kubernetes.client.CustomObjectsApi, expected_ownerships: int, namespaces: int) -> bool:
    ownerships = custom.list_cluster_custom_object(GROUP, VERSION, "serviceownerships")["items"]
    counted = sum(1 for so in ownerships
                  if (so.get("status") or {}).get("workloadCount") == 1
                  and so["status"].get("observedGeneration") == so["metadata"]["generation"])
    policy = custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", POLICY)
    governed = (policy.get("status") or {}).get("governedNamespaceCount")
    return counted == expected_ownerships and governed == namespaces


def admission_sample(apps: kubernetes.client.AppsV1Api, namespace: str, count: int = 50) -> list[float]:
    latencies = []
    for i in range(count):
        body = deployment(f"probe-{i}", {"app": "probe"}, annotations=OWNERSHIP_ANNOTATIONS)
        started = time.perf_counter()
        apps.create_namespaced_deployment(namespace, body, dry_run="All")
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=200)
    parser.add_argument("--per-namespace", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=0)
    parser.add_argument("--idle", type=float, default=30.0, help="Quiet seconds before the second RSS reading.")
    parser.add_argument("--state-dir", default=None, help="Reuse a running local cluster (default: a fresh one).")
    args = parser.parse_args(argv)

    namespaces = [f"bench-scale-{i:03d}" for i in range(args.namespaces)]
    total = args.namespaces * args.per_namespace
    with environment(args.state_dir, [POLICY], namespaces, start_operator=False) as env:
        custom = kubernetes.client.CustomObjectsApi(env.api)
        custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies",
                                            release_policy(POLICY, {LABEL: "true"}))
        print(f"creating {args.namespaces} namespaces, {total} Deployments ({args.replicas} replicas each) "
              f"and {total} ServiceOwnerships ...", flush=True)
        took = populate(env.info.kubeconfig, namespaces, args.per_namespace, args.replicas)
        print(f"  done in {took:.1f} s", flush=True)

        spawned = time.monotonic()
        env.operator.start()  # returns once /readyz answers 200
        ready = time.monotonic() - spawned
        pid = env.operator.process.pid
        print(f"operator ready (/readyz 200, indexes filled) {ready:.1f} s after spawning; RSS "
              f"{rss_mib(pid)[0]:.0f} MiB", flush=True)
        wait_for(lambda: settled(custom, total, args.namespaces), 600, "the statuses never caught up", interval=2)
        settled_after = time.monotonic() - spawned
        rss_settled, _ = rss_mib(pid)
        print(f"every ServiceOwnership and the policy status up to date {settled_after:.1f} s after spawning; "
              f"RSS {rss_settled:.0f} MiB", flush=True)

        apps = kubernetes.client.AppsV1Api(env.api)
        latencies = admission_sample(apps, namespaces[0])
        time.sleep(args.idle)  # the measurement itself: memory after a quiet spell, not synchronisation
        rss_idle, peak = rss_mib(pid)
        metrics = requests.get(env.operator.metrics_url, timeout=5).text
        violations = next((line.split()[-1] for line in metrics.splitlines()
                           if line.startswith(f'ballast_policy_violations{{policy="{POLICY}"}}')), "?")

        print()
        print(f"scale: {args.namespaces} namespaces, {total} governed Deployments, {total} ServiceOwnerships")
        verdict = "PASS" if ready < READY_TARGET_S else "MISS"
        print(f"  ready:    {ready:6.1f} s after spawning (target < {READY_TARGET_S:.0f} s)  {verdict}")
        print(f"  settled:  {settled_after:6.1f} s after spawning (all statuses current)")
        verdict = "PASS" if max(rss_idle, rss_settled) < RSS_TARGET_MIB else "MISS"
        print(f"  RSS:      {rss_settled:6.0f} MiB settled, {rss_idle:.0f} MiB after {args.idle:.0f} s idle, "
              f"peak {peak:.0f} MiB (target < {RSS_TARGET_MIB:.0f} MiB)  {verdict}")
        print(f"  admission (dry-run create, client side, n={len(latencies)}): "
              f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms")
        print(f"  policy audit violations: {violations} (expected 0: every Deployment is annotated)")
        env.ok = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
