"""Operator replicas behind one webhook endpoint, under steady governed creates, through a fault: what
``test_failover.py`` asserts and ``benchmarks/failover.py`` prints.

Replicas are real ``ballast operator run --leader-election`` processes sharing one serving certificate;
the webhook configuration the leader writes points at the balancer (``tests/harness/balancer.py``),
which plays the webhook Service. While ``Load`` creates governed Deployments at a steady rate, a
release is under way, and the fault strikes:

- ``kill``: SIGKILL of the leader, then a replacement starts (as the Deployment's ReplicaSet would);
- ``rolling``: a rolling restart: stop one replica, start a new one, wait until it is ready, then the other;
- ``stop``: SIGTERM of the leader, then a replacement starts.

At the fault, a second Deployment's pod template changes: "releases move again" when the new leader has
recorded it as a Release. Then the release under way must end Promoted with each step analysed and
passed exactly once.

A SIGKILL takes with it the admission calls on the killed replica's open connections at that instant:
the ones it was answering, and any the API server sent on a kept-alive connection to it as it died. The
kernel closes those connections (``EOF``, or a reset) and the API server does not resend a POST, so
nothing can answer them, whatever serves the webhook; they are told apart from failures for lack of a
webhook (refused connections, no endpoint, timeouts) by that error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.harness.balancer import Balancer
from tests.harness.cluster import ClusterInfo
from tests.harness.operator import OperatorProcess
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, service_ownership
from tests.integration.releasing import GOOD, change, final_release, release_in, releases

LEASE_SECONDS = 6
DRAIN_SECONDS = 2
FAULTS = ("kill", "rolling", "stop")


class Replicas:
    """Operator replicas, each a backend of the balancer, electing their leader in ``home``."""

    def __init__(self, cluster: ClusterInfo, api: kubernetes.client.ApiClient, directory: Path, home: str,
                 balancer: Balancer) -> None:
        self.cluster, self.directory, self.home, self.balancer = cluster, directory, home, balancer
        self.coordination = kubernetes.client.CoordinationV1Api(api)
        self.live: dict[str, OperatorProcess] = {}
        self._made = 0

    def start(self) -> str:
        """Start a new replica and return once the balancer routes to it."""
        name = f"replica-{self._made}"
        self._made += 1
        replica = OperatorProcess(self.cluster, self.directory / f"{name}.log", extra_args=(
            "--leader-election", "--operator-namespace", self.home,
            "--leader-election-lease-seconds", str(LEASE_SECONDS),
            "--shutdown-drain-seconds", str(DRAIN_SECONDS), "--webhook-url", self.balancer.url),
            env={"POD_NAME": name})  # its identity in the Lease (it has no Pod to label: a warning, no more)
        replica.start()
        self.live[name] = replica
        self.balancer.set_backend(name, ("127.0.0.1", urlsplit(replica.webhook_url).port or 0, replica.ready_url))
        wait_for(lambda: name in self.balancer.ready(), 30, f"the balancer never routed to {name}")
        return name

    def leader(self) -> str | None:
        try:
            return self.coordination.read_namespaced_lease("ballast", self.home).spec.holder_identity
        except kubernetes.client.ApiException:
            return None

    def kill(self, name: str) -> None:
        self.live.pop(name).kill()
        # As with a Service, the endpoint goes only once its readiness probe fails.
        wait_for(lambda: name not in self.balancer.ready(), 10, f"the balancer kept routing to killed {name}")
        self.balancer.remove_backend(name)

    def stop(self, name: str) -> None:
        self.live.pop(name).stop()
        self.balancer.remove_backend(name)

    def stop_all(self) -> None:
        for name in list(self.live):
            self.stop(name)


@dataclass
class Load:
    """Governed Deployment creates at ``rate`` per second from a pool of threads; every failure kept."""

    apps: kubernetes.client.AppsV1Api
    namespace: str
    rate: float = 50
    persist: bool = False
    """False: server-side dry-runs, which go through admission (both webhooks) and store nothing, so that
    thousands of Deployments do not slow every later start of an operator in the same cluster."""
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _create(self, index: int) -> None:
        body = deployment(f"load-{index}", {"app": "load", "load": str(index)}, replicas=0,
                          annotations=OWNERSHIP_ANNOTATIONS)
        try:
            self.apps.create_namespaced_deployment(self.namespace, body, dry_run=None if self.persist else "All")
        except kubernetes.client.ApiException as error:
            self.failures.append(f"{error.status}: {error.body}")
        except Exception as error:  # a client-side timeout is a failure too
            self.failures.append(repr(error))

    @contextmanager
    def running(self) -> Iterator[Load]:
        def pace() -> None:
            with ThreadPoolExecutor(10) as pool:  # the API client's connection pool holds 10
                started = time.monotonic()
                while not self._stop.is_set():
                    pool.submit(self._create, self.sent)
                    self.sent += 1
                    # Keep the rate over the whole run, not per tick: a slow tick is made up for.
                    time.sleep(max(0.0, started + self.sent / self.rate - time.monotonic()))
        pacer = threading.Thread(target=pace, daemon=True)
        pacer.start()
        try:
            yield self
        finally:
            self._stop.set()
            pacer.join()


def in_flight_on_a_killed_replica(failure: str) -> bool:
    """Whether the webhook call failed because the replica holding its connection died mid-call."""
    return "failed calling webhook" in failure and (failure.endswith(': EOF"}]},"code":500}\n')
                                                    or "connection reset by peer" in failure)


@dataclass
class Outcome:
    fault: str
    sent: int
    failures: list[str]
    redials: int
    unserved: int
    releases_moved_seconds: float
    """From the fault to the change made at that moment being recorded as a Release."""
    lead_taken_seconds: float
    """From the fault to a new holder of the Lease."""
    steps: list[tuple[int, str]]
    """(step, verdict) of every analysis of the release that was under way."""
    phase: str


def strike(fault: str, replicas: Replicas) -> None:
    """The fault, and the replacement Kubernetes would start; returns once every replica is back."""
    leader = replicas.leader()
    assert leader in replicas.live, f"the Lease names {leader}, which is not a live replica"
    if fault == "kill":
        replicas.kill(leader)
        replicas.start()
    elif fault == "stop":
        replicas.stop(leader)
        replicas.start()
    else:  # rolling: the oldest first, as a ReplicaSet scales down the old one by one
        for old in sorted(replicas.live):
            replicas.stop(old)
            replicas.start()


def run(fault: str, replicas: Replicas, apps: kubernetes.client.AppsV1Api,
        custom: kubernetes.client.CustomObjectsApi, namespace: str, rate: float = 50, persist: bool = False) -> Outcome:
    """In a namespace that ``govern`` set up (with a second Deployment ``cart``): the fault under load."""
    before = replicas.leader()
    with Load(apps, namespace, rate, persist).running() as load:
        time.sleep(2)  # steady load before anything happens
        change(apps, namespace, "registry.example.com/app:2", GOOD)
        release_in(custom, namespace, ("Progressing",))
        struck = time.monotonic()
        striking = threading.Thread(target=strike, args=(fault, replicas))
        striking.start()
        change(apps, namespace, "registry.example.com/cart:2", GOOD, name="cart")
        lead_taken = wait_for(lambda: replicas.leader() not in (None, before) and time.monotonic(), 60,
                              "no other replica took the lead") - struck
        moved = wait_for(lambda: releases(custom, namespace, "cart") and time.monotonic(), 90,
                         "the change made at the fault was never recorded as a Release") - struck
        striking.join()
        done = final_release(custom, namespace, timeout=120)
        time.sleep(2)  # steady load after everything settled
    status = done.get("status") or {}
    return Outcome(fault, load.sent, load.failures, replicas.balancer.redials, replicas.balancer.unserved,
                   moved, lead_taken, [(a["step"], a["verdict"]) for a in status.get("analyses") or []],
                   status.get("phase") or "")


def prepare_cart(apps: kubernetes.client.AppsV1Api, custom: kubernetes.client.CustomObjectsApi,
                 namespace: str) -> None:
    """A second service of the low tier, whose change marks when releases move again."""
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                           service_ownership("cart", {"app": "cart"}, riskTier="low"))
    apps.create_namespaced_deployment(namespace, deployment("cart", {"app": "cart"}, replicas=2,
                                                            annotations=OWNERSHIP_ANNOTATIONS,
                                                            template_annotations=GOOD))
    wait_for(lambda: (apps.read_namespaced_deployment("cart", namespace).status.available_replicas or 0) == 2,
             60, "cart never became available")


def delete_policy(custom: kubernetes.client.CustomObjectsApi, name: str) -> None:
    try:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)
    except kubernetes.client.ApiException as error:
        if error.status != 404:
            raise
