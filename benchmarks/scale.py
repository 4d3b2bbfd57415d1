"""Scale: 10,000 governed Deployments in 1,000 namespaces, and what the operator costs there.

    python -m benchmarks.scale [--namespaces 1000] [--per-namespace 10] [--baseline-namespaces 200]
                               [--busy-releases 50] [--reaction-runs 3] [--admission-seconds 20]
                               [--idle 30] [--profile DIR] [--state-dir DIR]

One run measures two sizes on the same cluster, so that the admission figures of both meet the same
machine: first ``--baseline-namespaces`` namespaces (2,000 Deployments, the size proven before), then
all ``--namespaces``. Each namespace is selected by one ReleasePolicy (Enforce) and holds
``--per-namespace`` Deployments (0 replicas: no pods) carrying the ownership annotations, each with its
ServiceOwnership. At each size the cluster is populated while no operator runs (the webhook
configurations are removed first, as an uninstalled operator leaves them), then a real
``ballast operator run`` is spawned (a cold start at full size) and the script measures:

- ready: ``/readyz`` answers 200: kopf has listed every watched kind and filled its indexes, so admission
  judges with full knowledge (target at full size: under 120 s);
- current: every ServiceOwnership's status counts its Deployment for the current generation and the
  policy's status governs every namespace (target: under 300 s);
- memory: VmRSS of the operator once current and after ``--idle`` quiet seconds, and its peak (VmHWM)
  (target: under 400 MiB), with etcd's and kube-apiserver's beside it;
- admission, after those quiet seconds: ``benchmarks.admission_latency``'s open-loop load (50 creates/s,
  server-side dry-run, alternating a governed and an ungoverned namespace) for ``--admission-seconds``;
  "added" is governed minus plain at p50. Target: the full size's added p50 within 0.5 ms of the baseline's.

Then, at full size: ``--busy-releases`` releases of another team progress at once (1-replica Deployments
with simulated pods, canary checks every second against the real Prometheus, 10-minute steps), while
``--reaction-runs`` bad releases of a 3-replica ``shop`` are rolled back; reaction is measured from
outside as in ``benchmarks.release_numbers`` (target: under 1 s). The machine's load (``uptime``) is
printed with every figure: the machine may be shared.

``--profile DIR`` runs the full-size operator under pyinstrument (``pip install pyinstrument``) and
writes its text report there when it stops; it slows the operator, so figures of such a run are not
the benchmark's. Not a test: it prints figures and PASS/MISS, and exits 1 only when the run itself failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import kubernetes

from ballast.api.common import GROUP, VERSION
from benchmarks.admission_latency import (
    GOVERNED,
    PLAIN,
    WARMUP_SECONDS,
    LoadGenerator,
    delta,
    histogram_quantile,
    percentile,
    scrape,
)
from benchmarks.environment import Environment, environment
from benchmarks.release_numbers import (
    HUNG_SELECTOR,
    NS_HUNG,
    NS_REACTION,
    STEPS,
    TIER,
    Bench,
    create_service,
    measure_rollbacks,
    prepare_cluster,
)
from benchmarks.watching import ClusterWatch, phase
from tests.harness import wait_for
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy, service_ownership
from tests.integration.releasing import FAST_TIER, GOOD, change

POLICY = "bench-scale"
BUSY_POLICY = "bench-scale-busy"
LABEL = "ballast.dev/bench-scale"
READY_TARGET_S = 120.0
CURRENT_TARGET_S = 300.0
RSS_TARGET_MIB = 400.0
ADMISSION_DRIFT_TARGET_MS = 0.5
ADMISSION_RATE = 50.0
BUSY_READY_DEADLINE = "120s"
CREATORS = 16  # threads creating objects: the API server, not the client, should be the limit


def rss_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def load() -> str:
    """The machine's load averages (1, 5, 15 min), as uptime prints them."""
    return "load " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def control_plane_memory(env: Environment) -> str:
    parts = []
    for name in ("etcd", "kube-apiserver"):
        pid = env.info.pids.get(name)
        if pid is not None and Path(f"/proc/{pid}").exists():
            parts.append(f"{name} {rss_mib(pid)[0]:.0f} MiB")
    return ", ".join(parts) or "control plane memory unknown (no pids recorded)"


# -- populating ----------------------------------------------------------------------------------------


def populate(kubeconfig: str, namespaces: list[str], per_namespace: int) -> float:
    """Create the namespaces, then each namespace's ServiceOwnerships and Deployments from a pool of threads,
    each with its own client (one connection each); returns the seconds it took."""
    local = threading.local()

    def client() -> kubernetes.client.ApiClient:
        if not hasattr(local, "api"):
            local.api = kubernetes.config.new_client_from_config(config_file=kubeconfig)
        return local.api

    def namespace(name: str) -> None:
        kubernetes.client.CoreV1Api(client()).create_namespace({"metadata": {"name": name, "labels": {LABEL: "true"}}})

    def fill(name: str) -> None:
        apps, custom = kubernetes.client.AppsV1Api(client()), kubernetes.client.CustomObjectsApi(client())
        for i in range(per_namespace):
            labels = {"app": f"svc-{i}"}
            custom.create_namespaced_custom_object(GROUP, VERSION, name, "serviceownerships",
                                                   service_ownership(f"svc-{i}", labels), _preload_content=False)
            apps.create_namespaced_deployment(name, deployment(f"svc-{i}", labels, replicas=0,
                                                               annotations=OWNERSHIP_ANNOTATIONS),
                                              _preload_content=False)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CREATORS) as pool:
        list(pool.map(namespace, namespaces))
        list(pool.map(fill, namespaces))
    return time.monotonic() - started


def remove_webhook_configurations(api: kubernetes.client.ApiClient) -> None:
    """What uninstalling the operator does: no Fail webhook is left to refuse while none serves it."""
    admission = kubernetes.client.AdmissionregistrationV1Api(api)
    for delete in (admission.delete_validating_webhook_configuration,
                   admission.delete_mutating_webhook_configuration):
        with contextlib.suppress(kubernetes.client.ApiException):
            delete("ballast.dev")


# -- measuring -----------------------------------------------------------------------------------------


def current(api: kubernetes.client.ApiClient, expected_ownerships: int, namespaces: int) -> bool:
    """Every ServiceOwnership counts its Deployment for its generation, and the policy governs every namespace
    (``namespaces`` and the admission load's governed one)."""
    custom = kubernetes.client.CustomObjectsApi(api)
    listing = json.loads(custom.list_cluster_custom_object(GROUP, VERSION, "serviceownerships",
                                                           _preload_content=False).data)
    counted = sum(1 for so in listing["items"]
                  if (so.get("status") or {}).get("workloadCount") == 1
                  and so["status"].get("observedGeneration") == so["metadata"]["generation"])
    policy = custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", POLICY)
    governed = (policy.get("status") or {}).get("governedNamespaceCount")
    return counted >= expected_ownerships and governed == namespaces + 1


def added_latency(kubeconfig: str, metrics_url: str, seconds: float) -> tuple[float, float, float, int, float]:
    """Open-loop dry-run creates, governed and plain alternating: (governed p50, plain p50, added p50, errors,
    the operator's own p50 decision time), in ms. The last tells a busy operator from a busy machine."""
    generator = LoadGenerator(kubeconfig, persist=False)
    try:
        run_id = uuid.uuid4().hex[:6]
        generator.run(ADMISSION_RATE, WARMUP_SECONDS, f"warm-{run_id}")
        before = scrape(metrics_url)
        samples, _ = generator.run(ADMISSION_RATE, seconds, f"bench-{run_id}")
        after = scrape(metrics_url)
    finally:
        generator.close()
    buckets = delta(before, after, "ballast_admission_duration_seconds_bucket", kind="Deployment")
    decision = histogram_quantile(0.5, [(float(dict(labels)["le"]), n) for labels, n in buckets.items()]) * 1000
    governed = [s.latency_ms for s in samples if s.namespace == GOVERNED and not s.error]
    plain = [s.latency_ms for s in samples if s.namespace == PLAIN and not s.error]
    errors = sum(1 for s in samples if s.error)
    if not governed or not plain:
        raise RuntimeError(f"admission: no successful requests in a class ({errors} errors)")
    g50, p50 = percentile(governed, 50), percentile(plain, 50)
    return g50, p50, g50 - p50, errors, decision


@dataclass
class SizeFigures:
    deployments: int
    populate_s: float
    ready_s: float
    current_s: float
    rss_current: float
    rss_idle: float
    rss_peak: float
    admission: tuple[float, float, float, int, float]
    notes: list[str]


def measure_size(env: Environment, args: argparse.Namespace, namespaces: list[str], new: list[str],
                 profile: Path | None) -> SizeFigures:
    """Populate ``new`` (the operator stopped), cold-start the operator over ``namespaces``, and measure."""
    total = len(namespaces) * args.per_namespace
    notes: list[str] = []

    def note(line: str) -> None:
        print(f"  {line}  [{load()}]", flush=True)
        notes.append(f"{line}  [{load()}]")

    env.operator.stop()
    remove_webhook_configurations(env.api)
    print(f"\n=== {total} Deployments in {len(namespaces)} namespaces ===", flush=True)
    took = populate(env.info.kubeconfig, new, args.per_namespace)
    note(f"created {len(new)} namespaces and {2 * len(new) * args.per_namespace} objects in {took:.1f} s "
         f"({2 * len(new) * args.per_namespace / took:.0f} objects/s); {control_plane_memory(env)}")
    if profile is not None:
        env.operator.command[1:1] = ["-m", "pyinstrument", "-r", "text", "--show-all", "-o", str(profile)]
    spawned = time.monotonic()
    env.operator.start(timeout=600)
    ready = time.monotonic() - spawned
    pid = env.operator.process.pid
    note(f"ready (/readyz 200, indexes filled) {ready:.1f} s after spawning; operator RSS {rss_mib(pid)[0]:.0f} MiB")
    wait_for(lambda: current(env.api, total, len(namespaces)), 900, "the statuses never caught up", interval=5)
    current_s = time.monotonic() - spawned
    rss_current, _ = rss_mib(pid)
    note(f"every status current {current_s:.1f} s after spawning; operator RSS {rss_current:.0f} MiB; "
         f"{control_plane_memory(env)}")
    # The measurement itself, not synchronisation: memory after a quiet spell, and admission in steady state
    # (right after the statuses are current the operator still handles the watch events of its own writes).
    time.sleep(args.idle)
    rss_idle, peak = rss_mib(pid)
    note(f"after {args.idle:.0f} s idle: operator RSS {rss_idle:.0f} MiB, peak {peak:.0f} MiB; "
         f"{control_plane_memory(env)}")
    admission = added_latency(env.info.kubeconfig, env.operator.metrics_url, args.admission_seconds)
    note(f"admission p50: governed {admission[0]:.2f} ms, plain {admission[1]:.2f} ms, added {admission[2]:.2f} ms "
         f"({admission[3]} errors); the operator's own decision p50 {admission[4]:.2f} ms")
    return SizeFigures(total, took, ready, current_s, rss_current, rss_idle, peak, admission, notes)


# -- releases at full size -----------------------------------------------------------------------------


def busy_releases(bench: Bench, count: int) -> Callable[[], int]:
    """``count`` releases of another team progressing at once (10-minute steps); returns how to count
    those still progressing."""
    # A canary gets BUSY_READY_DEADLINE to become ready, not the fast tier's 15 s: 50 canaries created at once,
    # their simulated pods behind 10,000 Deployments' work in kube-controller-manager, can take longer, and a
    # release that gives up on its canary is not "progressing at once", which is what is measured here.
    tier = {**FAST_TIER, "steps": STEPS, "maxConcurrent": count, "stepDuration": "10m",
            "readyDeadline": BUSY_READY_DEADLINE}
    with contextlib.suppress(kubernetes.client.ApiException):  # 409: a reused cluster
        bench.custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
            BUSY_POLICY, HUNG_SELECTOR, tiers={TIER: tier}))
    names = [f"busy-{i}" for i in range(count)]
    create_service(bench, NS_HUNG, names, 1, "busy", owner="search")
    image = f"app:busy-{bench.run_id}"
    for name in names:
        change(bench.apps, NS_HUNG, image, GOOD, name=name)

    def progressing() -> int:
        return sum(1 for name in names
                   if phase(bench.watch.release_of(NS_HUNG, name, image)) == "Progressing")

    try:
        bench.watch.wait(lambda: progressing() == count, 300, f"the {count} releases never all progressed")
    except TimeoutError:
        for name in names:  # how those that did not progress ended, before the cluster is torn down
            release = bench.watch.release_of(NS_HUNG, name, image)
            if phase(release) != "Progressing":
                status = (release or {}).get("status") or {}
                print(f"  {NS_HUNG}/{name}: {(release or {}).get('metadata', {}).get('name')} {phase(release) or '-'}: "
                      f"{status.get('message') or [c.get('message') for c in status.get('conditions') or []]}")
        raise
    return progressing


def releases_at_scale(env: Environment, args: argparse.Namespace) -> bool:
    prepare_cluster(env.api, max_concurrent=5, step_duration=FAST_TIER["stepDuration"])
    watch = ClusterWatch(env.info.kubeconfig)
    watch.start()
    try:
        bench = Bench(env.info, env.api, env.operator, watch, uuid.uuid4().hex[:6])
        started = time.monotonic()
        progressing = busy_releases(bench, args.busy_releases)
        print(f"\n=== {args.busy_releases} releases progressing at once ({time.monotonic() - started:.0f} s to "
              f"set up), {args.reaction_runs} bad releases of {NS_REACTION}/shop meanwhile ===  [{load()}]",
              flush=True)
        create_service(bench, NS_REACTION, ["shop"], 3, "shop")
        ok = measure_rollbacks(bench, args.reaction_runs)
        still = progressing()
        print(f"releases still progressing after the rollbacks: {still} of {args.busy_releases}  [{load()}]")
        return ok and still == args.busy_releases
    finally:
        watch.stop()


# -- main ----------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def summary(baseline: SizeFigures, full: SizeFigures, run_s: float) -> None:
    print(f"\nscale: {baseline.deployments} then {full.deployments} governed Deployments, as many ServiceOwnerships")
    print(f"{'':<30}{baseline.deployments:>10}{full.deployments:>10}  target at {full.deployments}")
    rows = [
        ("ready after spawning (s)", baseline.ready_s, full.ready_s,
         f"< {READY_TARGET_S:.0f} s  {verdict(full.ready_s < READY_TARGET_S)}"),
        ("every status current (s)", baseline.current_s, full.current_s,
         f"< {CURRENT_TARGET_S:.0f} s  {verdict(full.current_s < CURRENT_TARGET_S)}"),
        ("RSS current (MiB)", baseline.rss_current, full.rss_current, ""),
        ("RSS after idle (MiB)", baseline.rss_idle, full.rss_idle, ""),
        ("RSS peak (MiB)", baseline.rss_peak, full.rss_peak,
         f"< {RSS_TARGET_MIB:.0f} MiB  {verdict(full.rss_peak < RSS_TARGET_MIB)}"),
        ("admission p50 governed (ms)", baseline.admission[0], full.admission[0], ""),
        ("admission p50 plain (ms)", baseline.admission[1], full.admission[1], ""),
        ("operator decision p50 (ms)", baseline.admission[4], full.admission[4], ""),
    ]
    drift = full.admission[2] - baseline.admission[2]
    rows.append(("admission p50 added (ms)", baseline.admission[2], full.admission[2],
                 f"within {ADMISSION_DRIFT_TARGET_MS} ms of {baseline.deployments}'s: {drift:+.2f} ms  "
                 f"{verdict(drift <= ADMISSION_DRIFT_TARGET_MS)}"))
    for label, small, large, target in rows:
        print(f"{label:<30}{small:>10.2f}{large:>10.2f}  {target}")
    print(f"whole run: {run_s / 60:.1f} min")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespaces", type=int, default=1000)
    parser.add_argument("--per-namespace", type=int, default=10)
    parser.add_argument("--baseline-namespaces", type=int, default=200)
    parser.add_argument("--busy-releases", type=int, default=50, help="0 skips the releases part")
    parser.add_argument("--reaction-runs", type=int, default=3)
    parser.add_argument("--admission-seconds", type=float, default=20.0)
    parser.add_argument("--idle", type=float, default=120.0,
                        help="Quiet seconds after the statuses are current, before the last RSS reading and admission.")
    parser.add_argument("--profile", type=Path, help="Run the full-size operator under pyinstrument, report here.")
    parser.add_argument("--state-dir", default=None, help="Reuse a running local cluster (default: a fresh one).")
    args = parser.parse_args(argv)

    started = time.monotonic()
    namespaces = [f"bench-scale-{i:04d}" for i in range(args.namespaces)]
    base = namespaces[:args.baseline_namespaces]
    with environment(args.state_dir, [POLICY, BUSY_POLICY], [*namespaces, GOVERNED, PLAIN],
                     start_operator=False) as env:
        kubernetes.client.CustomObjectsApi(env.api).create_cluster_custom_object(
            GROUP, VERSION, "releasepolicies", release_policy(POLICY, {LABEL: "true"}))
        core = kubernetes.client.CoreV1Api(env.api)
        core.create_namespace({"metadata": {"name": GOVERNED, "labels": {LABEL: "true"}}})
        core.create_namespace({"metadata": {"name": PLAIN}})
        baseline = measure_size(env, args, base, base, None)
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        full = measure_size(env, args, namespaces, namespaces[len(base):],
                            args.profile / "operator-full-size.txt" if args.profile else None)
        ok = releases_at_scale(env, args) if args.busy_releases else True
        summary(baseline, full, time.monotonic() - started)
        env.ok = ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
