"""What every handler shares: the indexes, the operator's options and the reconcilers.

Kept in kopf's ``memo`` so handlers receive it as an argument instead of reaching for globals.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import kopf
import kubernetes
from pydantic import ValidationError

from ballast.api.common import Condition
from ballast.api.conditions import Observation, merge_conditions
from ballast.api.releasepolicy import AuditViolation, FreezeRefusal, ReleasePolicySpec, RequiredAnnotations
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.api.shards import Shard
from ballast.controllers.analysis import AnalysisRunner
from ballast.controllers.coalesce import Coalescer
from ballast.kube.client import CustomObjectRef, update_status
from ballast.kube.leadership import Observation as LeaseSighting
from ballast.metrics.breaker import GuardedProvider
from ballast.metrics.prometheus import PrometheusProvider
from ballast.metrics.provider import Timeouts
from ballast.policy.governance import Governance, PolicySelector, resolve_governance
from ballast.policy.ownership import NamedOwnership
from ballast.policy.rules import AdmissionContext
from ballast.webhooks.server import Endpoint, WebhookOptions

ROLLBACK_WORKERS = 4
"""Rollbacks carried out at once; a fifth waits for one of them (each takes a few API calls)."""

NEGATIVE_CONDITIONS = frozenset({"Overlapping"})
"""Conditions for which True is the bad state (most are bad when False)."""


@dataclass(frozen=True)
class Options:
    """Operator options from the command line."""

    operator_namespace: str | None = None
    prometheus_url: str | None = None
    resync_seconds: float = 10.0
    prometheus_refresh_seconds: float = 30.0
    webhooks: WebhookOptions | None = None
    """How to serve admission webhooks; None disables them."""
    operator_username: str | None = None
    """The identity the operator's own writes arrive with; admission lets them through untouched."""
    prometheus_timeouts: Timeouts = field(default_factory=Timeouts)
    """Client-side deadlines of every request to Prometheus."""
    metrics_workers: int = 8
    """Threads per metrics provider, apart from each other's and from the ones that talk to Kubernetes."""
    shard: Shard | None = None
    """The namespaces this operator acts for, when it is one of several shards; None: every namespace."""
    lease: str | None = None
    """``namespace/name`` of the leader Lease, with leader election: a shard's proof that it runs."""


class Acting:
    """Whether this replica acts: reconciles, drives releases and writes. Every replica admits.

    One replica alone always acts. Of several, only the Lease holder does (``cli/operator.py`` campaigns
    and calls :meth:`lead` and :meth:`resign`); the others keep their indexes filled and answer admission.
    """

    def __init__(self, leading: bool = True) -> None:
        self.leading = leading
        self.led = asyncio.Event()
        """Set each time this replica begins to lead, and cleared by the task that then reconciles every key
        (the events seen while following were not acted on)."""
        if leading:
            self.led.set()
        self._passes = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def lead(self) -> None:
        self.leading = True
        self.led.set()

    async def resign(self) -> None:
        """Stop acting, and return once no pass that started while leading is still running.

        The Lease is released only after this, so two replicas never run a release step at once.
        """
        self.leading = False
        await self._idle.wait()

    @asynccontextmanager
    async def acting(self) -> AsyncIterator[bool]:
        """Around one reconciler pass: yields whether to run it (only while leading), counted until it ends."""
        if not self.leading:
            yield False
            return
        self._passes += 1
        self._idle.clear()
        try:
            yield True
        finally:
            self._passes -= 1
            if not self._passes:
                self._idle.set()


@dataclass(frozen=True)
class ParsedPolicy:
    """A ReleasePolicy snapshot with its parsed spec.

    ``effective`` is what is enforced: the spec, or for an invalid policy its selector with every other
    setting at its default, so guardrails never silently vanish while someone fixes a typo.
    """

    snapshot: dict[str, Any]
    spec: ReleasePolicySpec | None
    invalid: str | None
    effective: ReleasePolicySpec | None

    @property
    def name(self) -> str:
        return self.snapshot["metadata"]["name"]


@dataclass
class Runtime:
    """Live indexes (filled by kopf), caches derived from them, and the reconcilers built on them.

    Admission reads only from here: no API call is made while the API server waits for an answer.
    """

    options: Options
    namespaces: kopf.Index
    workloads: kopf.Index
    ownerships: kopf.Index
    policies: kopf.Index
    releases: kopf.Index
    ownership_reconciler: Coalescer[str]
    """ServiceOwnership statuses, by namespace (``controllers/ownership.py``)."""
    policy_reconciler: Coalescer[str]
    """Every ReleasePolicy's status and the webhook configurations, in one pass (``controllers/policies.py``)."""
    release_reconciler: Coalescer[tuple[str, ...]]
    """Releases by (namespace, name), and ("deployment", namespace, name) to record a change
    (``controllers/releases.py``)."""
    refusal_recorder: Coalescer[str]
    """Changes this replica's freeze windows refused, into their policy's status, by policy name; runs on
    every replica (``controllers/policies.py`` ``record_answered_refusals``)."""
    analyses: AnalysisRunner
    """Looks at canaries, off the release passes; each finished look asks for a pass of its release."""
    acting: Acting = field(default_factory=Acting)
    """Whether this replica writes; the reconcilers run only while it does."""
    webhook_endpoint: Endpoint | None = None
    """Where the API server reaches this operator's webhooks; None when it does not apply the configurations
    (webhooks disabled, or a chart manages them)."""
    applied_webhook_configurations: list[dict[str, Any]] | None = None
    """What was last applied; None before the first pass."""
    error_budgets: dict[tuple[str, str], float | None] = field(default_factory=dict)
    """(namespace, ServiceOwnership) -> share of its SLO error budget left, refreshed in the background."""
    known_alerts: dict[str, frozenset[str] | None] = field(default_factory=dict)
    """Prometheus URL -> alerting rules loaded there (None while unreachable), refreshed in the background."""
    audit_inputs: int = 0
    """Counts the events that changed what the policy audit reads (``triggers.trigger``) and changes of the
    known alerts: an audit of the same count would find the same violations (the clock does not enter it)."""
    audits: dict[str, tuple[int, list[AuditViolation]]] = field(default_factory=dict)
    """Policy name -> (``audit_inputs`` when last audited, the violations found)."""
    seen_facts: dict[tuple[str, str | None, str | None], int] = field(default_factory=dict)
    """(plural, namespace, name) -> hash of what the ownership and policy passes read of the object, as its
    latest event showed it (``triggers.changed_facts``)."""
    lease_sightings: dict[str, LeaseSighting] = field(default_factory=dict)
    """Other shards' Leases (``namespace/name``) -> their record and when this operator first saw it so."""
    pending_refusals: dict[str, list[FreezeRefusal]] = field(default_factory=dict)
    """Policy name -> changes its freeze windows refused in this replica that its status does not list yet."""
    indexes_filled: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once kopf has filled every index from its initial full list (``startup._mark_indexes_filled``);
    before that admission cannot judge, no event asks for a pass, and the replica is not ready for the
    webhook Service."""
    handler_called: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at the first call of an event handler, once ``handler_context`` is kept."""
    handler_context: contextvars.Context | None = None
    """A copy of the context of the first event handler call: kopf's ``kopf.event`` needs the context
    variables kopf sets there, so passes asked for from outside a handler (on taking the lead) run in it."""
    webhooks_listening: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the webhook server accepts connections."""
    webhooks_draining: asyncio.Event = field(default_factory=asyncio.Event)
    """Set as the replica stops: the webhook server then closes each connection after answering on it."""
    rollback_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(ROLLBACK_WORKERS, thread_name_prefix="ballast-rollback"))
    """The threads that write a rollback and take its actions: a lane of their own, so that a rollback never
    waits behind the routine reads and status writes of every other pass (asyncio's default pool has
    cores + 4 threads: at 50 releases at once, a rollback's calls queued for a second behind them)."""
    background: list[asyncio.Task[None]] = field(default_factory=list)
    _providers: dict[str, GuardedProvider] = field(default_factory=dict)
    _executors: dict[str | None, ThreadPoolExecutor] = field(default_factory=dict)
    _parsed: dict[tuple[str, str], ParsedPolicy] = field(default_factory=dict)
    _governance: Governance | None = None
    _parsed_ownerships: dict[str, dict[tuple[str, str], NamedOwnership | None]] = field(default_factory=dict)
    _detached: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def indexes_ready(self) -> bool:
        return self.indexes_filled.is_set()

    def readiness(self) -> str | None:
        """None when this replica can answer admission, else why not (for ``/readyz``)."""
        if not self.indexes_ready:
            return "the operator is starting: its indexes are not filled yet"
        if self.options.webhooks is not None and not self.webhooks_listening.is_set():
            return "the operator is starting: its webhook server is not listening yet"
        return None

    def in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` without waiting for it, keeping a reference until it is done."""
        task = asyncio.get_running_loop().create_task(work)
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    def namespace_labels(self) -> dict[str, Mapping[str, str]]:
        return {name: next(iter(values), {}) for name, values in self.namespaces.items()}

    def parsed_policies(self) -> list[ParsedPolicy]:
        """Every policy, parsed once per resourceVersion."""
        parsed: dict[tuple[str, str], ParsedPolicy] = {}
        for values in self.policies.values():
            for snap in values:
                key = (snap["metadata"]["name"], snap["metadata"].get("resourceVersion") or "")
                parsed[key] = self._parsed.get(key) or _parse_policy(snap)
        self._parsed = parsed
        return sorted(parsed.values(), key=lambda p: p.name)

    def invalidate(self) -> None:
        """Forget derived state after a namespace or policy changed."""
        self._governance = None

    def governance(self) -> Governance:
        """Which policy governs which namespace, cached until a namespace or policy changes."""
        if self._governance is None:
            selectors = [
                PolicySelector(
                    name=p.name,
                    namespace_selector=p.effective.namespace_selector,
                    exempt_namespaces=frozenset(p.effective.admission.exempt_namespaces),
                )
                for p in self.parsed_policies() if p.effective is not None
            ]
            self._governance = resolve_governance(selectors, self.namespace_labels(), self.always_exempt())
        return self._governance

    def in_shard(self, namespace: str) -> bool:
        """Whether this operator acts for ``namespace``: always unsharded; sharded, when its selector picks the
        namespace's current labels (a namespace it has not seen is nobody's yet)."""
        if self.options.shard is None:
            return True
        values = self.namespaces.get(namespace)
        return values is not None and self.options.shard.governs(next(iter(values), {}))

    def always_exempt(self) -> list[str]:
        return [self.options.operator_namespace] if self.options.operator_namespace else []

    def governing_policy(self, namespace: str) -> ParsedPolicy | None:
        name = self.governance().policy_of.get(namespace)
        return next((p for p in self.parsed_policies() if p.name == name), None) if name else None

    def required_annotations(self, namespace: str) -> RequiredAnnotations:
        """The annotation keys the namespace's governing policy requires (defaults when ungoverned)."""
        policy = self.governing_policy(namespace)
        return policy.effective.admission.required_annotations if policy and policy.effective \
            else RequiredAnnotations()

    def named_ownerships(self, namespace: str) -> list[NamedOwnership]:
        """The namespace's valid ServiceOwnerships (invalid ones cannot select anything reliably).

        Parsed once per resourceVersion: admission asks on every request.
        """
        known = self._parsed_ownerships.get(namespace, {})
        current: dict[tuple[str, str], NamedOwnership | None] = {}
        for snap in self.ownerships.get(namespace, []):
            key = (snap["metadata"]["name"], snap["metadata"].get("resourceVersion") or "")
            if key in known:
                current[key] = known[key]
                continue
            try:
                current[key] = NamedOwnership(key[0], ServiceOwnershipSpec.model_validate(snap["spec"]))
            except ValidationError:
                current[key] = None
        self._parsed_ownerships[namespace] = current  # older versions drop out
        return [o for o in current.values() if o is not None]

    def admission_context(self, namespace: str, now: datetime) -> AdmissionContext | None:
        """What the admission rules need for a namespace; None when no policy governs it."""
        policy = self.governing_policy(namespace)
        if policy is None or policy.effective is None:
            return None
        return AdmissionContext(
            policy_name=policy.name,
            policy=policy.effective,
            ownerships=self.named_ownerships(namespace),
            now=now,
            known_alerts=self.known_alerts.get(self.prometheus_url(policy.effective) or ""),
        )

    def prometheus_url(self, policy: ReleasePolicySpec) -> str | None:
        """The policy's Prometheus, or the operator's default."""
        return policy.prometheus.url or self.options.prometheus_url

    def provider(self, url: str) -> GuardedProvider:
        """The metrics provider at ``url``, built once and kept with its circuit breaker."""
        if url not in self._providers:
            self._providers[url] = GuardedProvider(PrometheusProvider(url, self.options.prometheus_timeouts),
                                                   name=f"Prometheus at {url}")
        return self._providers[url]

    def executor_for(self, url: str | None) -> ThreadPoolExecutor:
        """The threads that talk to the provider at ``url``: a bulkhead, so a provider that hangs takes its
        own threads only, never another provider's nor those that write statuses and roll back."""
        if url not in self._executors:
            self._executors[url] = ThreadPoolExecutor(self.options.metrics_workers,
                                                      thread_name_prefix=f"ballast-metrics-{len(self._executors)}")
        return self._executors[url]

    def close_executors(self) -> None:
        self.rollback_executor.shutdown(wait=False, cancel_futures=True)
        for executor in self._executors.values():
            # A look still waiting on a hung provider ends by its deadline; nobody needs its answer now.
            executor.shutdown(wait=False, cancel_futures=True)


def _parse_policy(snap: dict[str, Any]) -> ParsedPolicy:
    try:
        spec = ReleasePolicySpec.model_validate(snap["spec"])
    except ValidationError as error:
        return ParsedPolicy(snap, None, describe_validation_error(error), _selector_only(snap["spec"]))
    return ParsedPolicy(snap, spec, None, spec)


def _selector_only(raw_spec: Mapping[str, Any]) -> ReleasePolicySpec | None:
    """An invalid policy still governs its namespaces (so guardrails never silently vanish)."""
    try:
        return ReleasePolicySpec.model_validate(
            {"namespaceSelector": raw_spec.get("namespaceSelector") or {},
             "admission": {"exemptNamespaces": (raw_spec.get("admission") or {}).get("exemptNamespaces") or []}}
        )
    except ValidationError:
        return None


def describe_validation_error(error: ValidationError) -> str:
    """One sentence per problem: where it is and what is wrong."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        parts.append(f"spec.{where}: {item['msg']}")
    return "; ".join(parts)


def now() -> datetime:
    """Condition timestamps have second precision, like metav1.Time."""
    return datetime.now(UTC).replace(microsecond=0)


def updated_conditions(
    snap: Mapping[str, Any], observed: list[Observation]
) -> tuple[list[dict[str, Any]], list[Condition]]:
    """Merge observed conditions into the snapshot's, as wire dicts, plus the ones that changed."""
    existing = []
    for raw in (snap.get("status") or {}).get("conditions") or []:
        try:
            existing.append(Condition.model_validate(raw))
        except ValidationError:
            continue  # A hand-edited, malformed condition is replaced by a computed one.
    merged, changed = merge_conditions(existing, observed, now(), snap["metadata"].get("generation"))
    return [c.to_wire() for c in merged], changed


async def write_status(ref: CustomObjectRef, snap: Mapping[str, Any], owned: dict[str, Any]) -> bool | None:
    """Write the status fields a reconciler owns, conditional on the snapshot's resourceVersion.

    True when written, False when nothing changed, None when the object was deleted or changed meanwhile
    (its own event brings a fresh pass, so the caller simply stops).
    """
    try:
        return await asyncio.to_thread(update_status, ref, snap.get("status"), owned,
                                       snap["metadata"].get("resourceVersion"))
    except kubernetes.client.ApiException as error:
        if error.status in (404, 409):
            return None
        raise


def post_condition_events(snap: Mapping[str, Any], changed: list[Condition]) -> None:
    """One event per changed condition: Warning when it moved into its bad state."""
    for condition in changed:
        bad = (condition.status == "True") == (condition.type in NEGATIVE_CONDITIONS)
        kopf.event(
            cast(kopf.Body, snap),
            type="Warning" if bad else "Normal",
            reason=condition.reason,
            message=f"{condition.type} is {condition.status}: {condition.message}",
        )
