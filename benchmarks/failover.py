"""Admission through a leader's death, a rolling restart and a clean stop, with two replicas (issue 12).

    python -m benchmarks.failover [--only kill|rolling|stop ...] [--rate 50] [--persist] [--state-dir DIR]

One local control plane; per fault, a fresh governed namespace (a fast policy, services ``shop`` and
``cart`` of the low tier) and two real ``ballast operator run --leader-election`` processes (lease 6 s,
drain 2 s) behind the harness's load balancer (``tests/harness/balancer.py``: probes ``/readyz`` every
0.5 s, as a Service's endpoints follow readiness). While Deployments are created in the namespace at
``--rate`` per second (server-side dry-runs unless ``--persist``: admission runs in full, nothing is
stored), a release of ``shop`` is under way and the fault strikes (see
``tests/integration/failover.py``); at that moment ``cart``'s pod template changes.

Printed per fault: creates sent and failed (any error, the webhook's included; of those, the calls
that were on the killed replica's open connections as it died, see ``tests/integration/failover.py``),
connections the
balancer re-dialled because a replica refused them (on a real Service those would have failed until
the endpoint went) and connections no ready replica took; seconds from the fault until another replica
held the Lease, and until ``cart``'s change was recorded as a Release (releases move again); and the
steps of ``shop``'s release with their verdicts.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

import kubernetes

from benchmarks.environment import environment
from tests.harness.balancer import Balancer
from tests.integration.failover import (
    FAULTS,
    Outcome,
    Replicas,
    delete_policy,
    in_flight_on_a_killed_replica,
    prepare_cart,
    run,
)
from tests.integration.releasing import govern


def one(fault: str, env_info, api: kubernetes.client.ApiClient, rate: float, persist: bool,
        directory: Path) -> Outcome:
    core, apps = kubernetes.client.CoreV1Api(api), kubernetes.client.AppsV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    namespace = f"bench-failover-{fault}-{uuid.uuid4().hex[:4]}"
    home = f"{namespace}-operator"
    core.create_namespace({"metadata": {"name": namespace, "labels": {"ballast.dev/test-ns": namespace}}})
    core.create_namespace({"metadata": {"name": home}})
    policy = None
    try:
        with Balancer() as balancer:
            replicas = Replicas(env_info, api, directory / fault, home, balancer)
            (directory / fault).mkdir(parents=True, exist_ok=True)
            try:
                replicas.start()
                replicas.start()
                policy = govern(custom, apps, namespace)
                prepare_cart(apps, custom, namespace)
                return run(fault, replicas, apps, custom, namespace, rate, persist)
            finally:
                replicas.stop_all()
    finally:
        if policy is not None:
            delete_policy(custom, policy)
        for name in (namespace, home):
            core.delete_namespace(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.failover", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=FAULTS, default=list(FAULTS))
    parser.add_argument("--rate", type=float, default=50.0, help="Governed creates per second.")
    parser.add_argument("--persist", action="store_true",
                        help="Store the Deployments (default: server-side dry-runs, through both webhooks).")
    parser.add_argument("--state-dir", default=None, help="Reuse a running local cluster (default: a fresh one).")
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="ballast-failover-"))
    outcomes = []
    with environment(args.state_dir, [], [], start_operator=False) as env:
        for fault in args.only:
            outcome = one(fault, env.info, env.api, args.rate, args.persist, directory)
            outcomes.append(outcome)
            in_flight = sum(1 for f in outcome.failures if in_flight_on_a_killed_replica(f))
            print(f"{fault:8} creates sent {outcome.sent}, failed {len(outcome.failures)} ({in_flight} on a killed "
                  f"replica's open connections); "
                  f"re-dialled {outcome.redials}, unserved {outcome.unserved}; "
                  f"lead taken after {outcome.lead_taken_seconds:.1f} s, releases moved again after "
                  f"{outcome.releases_moved_seconds:.1f} s; release {outcome.phase}, steps {outcome.steps}",
                  flush=True)
            for failure in outcome.failures[:3]:
                print(f"         failure: {failure[:300]}")
        env.ok = all(o.phase == "Promoted" and o.unserved == 0
                     and all(o.fault == "kill" and in_flight_on_a_killed_replica(f) for f in o.failures)
                     for o in outcomes)
    print(f"replica logs in {directory}")
    return 0 if env.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
