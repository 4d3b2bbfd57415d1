"""Leader election over a ``coordination.k8s.io/v1`` Lease: of several replicas, exactly one acts.

Every replica watches and answers admission; only the holder of the lease reconciles and writes
(``controllers.runtime.Acting`` gates the reconcilers). Why not kopf's peering: a paused kopf stops
processing its watches but keeps serving admission from indexes it no longer updates. The holder
labels its own Pod, for people and dashboards.

The rules are client-go's: a candidate never compares the holder's ``renewTime`` with its own clock
(node clocks differ); it takes the lease only once the record it observed has stayed unchanged for
the lease duration by its own monotonic clock, and every write is conditional on ``resourceVersion``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kubernetes

from ballast.api.vocabulary import LEADER_LABEL
from ballast.kube.client import api_client

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says about its holder, as far as the election cares."""

    holder: str
    """Identity of the holder; empty once released."""
    duration_seconds: int
    renewed: str
    """The holder's last renewTime: only ever compared for change, never with this machine's clock."""
    transitions: int

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> LeaseRecord:
        return cls(holder=spec.get("holderIdentity") or "", duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
                   renewed=str(spec.get("renewTime") or ""), transitions=int(spec.get("leaseTransitions") or 0))


@dataclass(frozen=True)
class Observation:
    record: LeaseRecord
    since: float
    """Monotonic time at which this candidate first saw ``record``."""


def observe(previous: Observation | None, record: LeaseRecord, now: float) -> Observation:
    """The observation after reading ``record`` at ``now``: unchanged records keep their first sighting."""
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def may_take(observation: Observation, me: str, now: float) -> bool:
    """Whether ``me`` may write itself as the holder: it holds it, nobody does, or the holder went silent."""
    record = observation.record
    if record.holder in ("", me):
        return True
    return now - observation.since >= record.duration_seconds


def _micro_time(moment: datetime) -> str:
    # MicroTime needs exactly six fractional digits; isoformat() drops them when they are zero.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Campaign for, keep and release one Lease. Blocking API calls run in threads, off the event loop."""

    def __init__(self, namespace: str, name: str, identity: str, *, lease_seconds: int = 15,
                 renew_deadline_seconds: float = 10, retry_seconds: float = 2,
                 api: kubernetes.client.CoordinationV1Api | None = None) -> None:
        if not retry_seconds < renew_deadline_seconds < lease_seconds:
            raise ValueError("leader election needs retry < renew deadline < lease duration")
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_seconds, self.renew_deadline, self.retry = lease_seconds, renew_deadline_seconds, retry_seconds
        self._api = api or kubernetes.client.CoordinationV1Api(api_client())
        self._observation: Observation | None = None
        self._last_holder: str | None = None

    @property
    def where(self) -> str:
        return f"Lease {self.namespace}/{self.name}"

    async def acquire(self) -> None:
        """Return once this candidate holds the lease."""
        logger.info("%s: %s is waiting to lead.", self.where, self.identity)
        while not await asyncio.to_thread(self._try):
            await asyncio.sleep(self.retry)
        logger.info("%s: %s now leads.", self.where, self.identity)

    async def keep(self) -> None:
        """Renew the lease; return when no renewal succeeded within the renew deadline (leadership lost)."""
        renewed = time.monotonic()
        while time.monotonic() - renewed <= self.renew_deadline:
            await asyncio.sleep(self.retry)
            if await asyncio.to_thread(self._try):
                renewed = time.monotonic()
        logger.error("%s: %s could not renew it for %gs and no longer leads.", self.where, self.identity,
                     self.renew_deadline)

    async def release(self) -> None:
        """Hand the lease over at once (on a clean shutdown) instead of making the next leader wait it out."""
        await asyncio.to_thread(self._release)

    def _try(self) -> bool:
        now = time.monotonic()
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return self._write(None, LeaseRecord("", self.lease_seconds, "", 0))
            logger.warning("%s could not be read: %s", self.where, error.reason)
            return False
        spec = self._api.api_client.sanitize_for_serialization(lease.spec) or {}
        record = LeaseRecord.from_spec(spec)
        if record.holder != self._last_holder:
            logger.info("%s is held by %s.", self.where, record.holder or "nobody")
            self._last_holder = record.holder
        self._observation = observe(self._observation, record, now)
        if not may_take(self._observation, self.identity, now):
            return False
        return self._write(lease.metadata.resource_version, record, spec.get("acquireTime"))

    def _write(self, resource_version: str | None, previous: LeaseRecord, acquired: str | None = None) -> bool:
        now = _micro_time(datetime.now(UTC))
        taking_over = previous.holder != self.identity
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": resource_version},
            "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_seconds,
                     "acquireTime": now if taking_over else acquired, "renewTime": now,
                     "leaseTransitions": previous.transitions + (1 if taking_over and previous.holder else 0)},
        }
        try:
            if resource_version is None:
                self._api.create_namespaced_lease(self.namespace, body)
            else:
                self._api.replace_namespaced_lease(self.name, self.namespace, body)
        except kubernetes.client.ApiException as error:
            if error.status != 409:  # a conflict is another candidate winning this round
                logger.warning("%s could not be written: %s", self.where, error.reason)
            return False
        self._last_holder = self.identity
        return True

    def _release(self) -> None:
        try:
            lease = self._api.read_namespaced_lease(self.name, self.namespace)
            if lease.spec.holder_identity != self.identity:
                return
            self._api.patch_namespaced_lease(self.name, self.namespace, {
                "metadata": {"resourceVersion": lease.metadata.resource_version},
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1}})
            logger.info("%s released by %s.", self.where, self.identity)
        except kubernetes.client.ApiException as error:
            logger.warning("%s could not be released (the next leader waits it out): %s", self.where, error.reason)


def read_lease(where: str) -> LeaseRecord | None:
    """The record of the Lease at ``namespace/name``, or None when there is none (another shard's, say)."""
    namespace, _, name = where.partition("/")
    if not namespace or not name:
        return None
    api = kubernetes.client.CoordinationV1Api(api_client())
    try:
        lease = api.read_namespaced_lease(name, namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise
    return LeaseRecord.from_spec(api.api_client.sanitize_for_serialization(lease.spec) or {})


def label_pod(namespace: str, pod: str, leading: bool) -> None:
    """Mark (or unmark) this replica's Pod as the leader, which routes the webhook Service to it."""
    core = kubernetes.client.CoreV1Api(api_client())
    # A JSON patch, not a merge patch: this client sends dicts as strategic merge patches, and this
    # API server turns a null label into "" in one when the Pod has no labels yet.
    try:
        labels = core.read_namespaced_pod(pod, namespace).metadata.labels
        key = "/metadata/labels/" + LEADER_LABEL.replace("~", "~0").replace("/", "~1")
        if leading:
            patch = [{"op": "add", "path": key, "value": "true"} if labels is not None else
                     {"op": "add", "path": "/metadata/labels", "value": {LEADER_LABEL: "true"}}]
        elif LEADER_LABEL in (labels or {}):
            patch = [{"op": "remove", "path": key}]
        else:
            return
        core.patch_namespaced_pod(pod, namespace, patch)
    except kubernetes.client.ApiException as error:
        logger.warning("Pod %s/%s could not be %s %s: %s", namespace, pod, "labelled" if leading else "unlabelled",
                       LEADER_LABEL, error.reason)
