"""Delivers notifications (policy/notifications.py says what) on worker threads, never on a release pass or
in admission: the hooks only enqueue, into a bounded queue that drops (and counts) rather than waits.

A receiver's URL is read from its Secret at delivery, so a rotated URL is used at once. A failed delivery is a
Warning event (NotificationFailed) on the Release or workload it was about, and ``ballast_notifications_total``
with ``outcome="failed"``.
"""

from __future__ import annotations

import base64
import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import kubernetes

from ballast.api.notifications import NotificationReceiver, SecretKeyRef
from ballast.api.release import ReleaseSpec, ReleaseStatus
from ballast.api.releasepolicy import ReleasePolicySpec
from ballast.delivery import DeliveryError, post_json
from ballast.instruments import NOTIFICATIONS
from ballast.kube.client import api_client
from ballast.kube.events import post_event
from ballast.policy.notifications import (
    Notice,
    break_glass_notice,
    freeze_notice,
    payload,
    receivers_for,
    release_notice,
)
from ballast.policy.rules import AdmissionContext, Decision

logger = logging.getLogger(__name__)

QUEUE_SIZE = 256
WORKERS = 2
"""Two, so a receiver that hangs (about 17 s a message, see delivery.py) holds one worker, not the others' messages."""
QUIET = timedelta(minutes=10)
"""A repeat of a notice within this time is not sent again (a refused change retried by a pipeline)."""


class Notifier:
    """A bounded queue of notices and the worker threads that deliver them."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[NotificationReceiver, Notice, dict[str, Any]]] = queue.Queue(QUEUE_SIZE)
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._sent: dict[tuple[str, ...], datetime] = {}

    def submit(self, receivers: Sequence[NotificationReceiver], notice: Notice, involved: Mapping[str, Any]) -> None:
        """Queue ``notice`` for the receivers that asked for its event; returns at once."""
        chosen = receivers_for(receivers, notice.event)
        if not chosen or self._repeat(notice):
            return
        self._start()
        for receiver in chosen:  # one item per receiver: a receiver that hangs delays no other's message
            try:
                self._queue.put_nowait((receiver, notice, dict(involved)))
            except queue.Full:
                logger.warning("Notification %s about %s %s/%s to receiver %s dropped: %d messages already wait "
                               "for delivery.", notice.event.value, notice.kind, notice.namespace, notice.name,
                               receiver.name, QUEUE_SIZE)
                NOTIFICATIONS.labels(event=notice.event.value, receiver=receiver.name, outcome="dropped").inc()

    def _repeat(self, notice: Notice) -> bool:
        now = datetime.now(UTC)
        with self._lock:
            if len(self._sent) > 4 * QUEUE_SIZE:
                self._sent = {k: t for k, t in self._sent.items() if now - t < QUIET}
            last = self._sent.get(notice.key)
            if last is not None and now - last < QUIET:
                return True
            self._sent[notice.key] = now
            return False

    def _start(self) -> None:
        with self._lock:
            if not self._workers:
                self._workers = [threading.Thread(target=self._work, name=f"ballast-notify-{i}", daemon=True)
                                 for i in range(WORKERS)]
                for worker in self._workers:
                    worker.start()

    def _work(self) -> None:
        while True:
            receiver, notice, involved = self._queue.get()
            try:
                deliver(receiver, notice, involved)
            except Exception:  # a worker outlives any one message
                logger.exception("Notification %s to receiver %s failed.", notice.event.value, receiver.name)


def deliver(receiver: NotificationReceiver, notice: Notice, involved: dict[str, Any]) -> None:
    """Send one notice to one receiver; a failure becomes a metric, a log line and a Warning event."""
    labels = {"event": notice.event.value, "receiver": receiver.name}
    try:
        post_json(secret_url(receiver.url_secret_ref), payload(receiver.type, notice))
    except DeliveryError as error:
        NOTIFICATIONS.labels(**labels, outcome="failed").inc()
        ref = receiver.url_secret_ref
        message = (f"Notification {notice.event.value} about {notice.kind} {notice.namespace}/{notice.name} to "
                   f"receiver {receiver.name} of ReleasePolicy {notice.policy} was not delivered: {error}. Check the "
                   f"URL in Secret {ref.namespace}/{ref.name} key {ref.key} and that the receiver answers.")
        logger.warning("%s", message)
        post_event(involved, "Warning", "NotificationFailed", message)
        return
    NOTIFICATIONS.labels(**labels, outcome="sent").inc()


def secret_url(ref: SecretKeyRef) -> str:
    """The URL in the Secret; DeliveryError (a sentence) when it cannot be read."""
    try:
        secret = kubernetes.client.CoreV1Api(api_client()).read_namespaced_secret(ref.name, ref.namespace)
    except kubernetes.client.ApiException as error:
        raise DeliveryError(f"Secret {ref.namespace}/{ref.name} could not be read ({error.status} {error.reason})"
                            ) from None
    value = (secret.data or {}).get(ref.key)
    if value is None:
        raise DeliveryError(f"Secret {ref.namespace}/{ref.name} has no key {ref.key}")
    try:
        return base64.b64decode(value).decode().strip()
    except ValueError:  # also UnicodeDecodeError
        raise DeliveryError(f"Secret {ref.namespace}/{ref.name} key {ref.key} is not a URL in UTF-8") from None


NOTIFIER = Notifier()


def notify_release(policy: ReleasePolicySpec, release: Mapping[str, Any], spec: ReleaseSpec, status: ReleaseStatus,
                   at: datetime) -> None:
    """A release entered ``status.phase``: tell the policy's receivers, if the phase is one they hear about."""
    if not policy.notifications:
        return
    metadata = release["metadata"]
    notice = release_notice(metadata["name"], metadata["namespace"], spec, status, at)
    if notice is not None:
        NOTIFIER.submit(policy.notifications, notice, release)


def notify_admission(context: AdmissionContext, body: Mapping[str, Any], decision: Decision) -> None:
    """Admission broke glass, or a freeze refused the change: tell the policy's receivers."""
    receivers = context.policy.notifications
    if not receivers:
        return
    metadata = body.get("metadata") or {}
    namespace, name = metadata.get("namespace") or "", metadata.get("name") or metadata.get("generateName") or ""
    if decision.break_glass is not None:
        NOTIFIER.submit(receivers, break_glass_notice(context.policy_name, str(body.get("kind") or ""), namespace,
                                                      name, decision.break_glass, context.now), body)
    if decision.frozen is not None and not decision.allowed:
        NOTIFIER.submit(receivers, freeze_notice(context.policy_name, decision.frozen), body)
