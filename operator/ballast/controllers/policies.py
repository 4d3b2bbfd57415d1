"""ReleasePolicy status: governance, overlaps, validity, open freezes, audit (after the webhook configurations)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import kubernetes

from ballast.api.common import GROUP, VERSION
from ballast.api.conditions import Observation
from ballast.api.releasepolicy import ActiveFreeze, AuditViolation, ShardStatus
from ballast.controllers.reports import publish_reports
from ballast.controllers.runtime import (
    ParsedPolicy,
    Runtime,
    now,
    post_condition_events,
    updated_conditions,
    write_status,
)
from ballast.controllers.webhook_configurations import reconcile_webhook_configuration
from ballast.instruments import FREEZE_ACTIVE, POLICY_VIOLATIONS
from ballast.kube.client import CustomObjectRef, api_client
from ballast.kube.deployments import release_canaries
from ballast.kube.leadership import observe, read_lease
from ballast.policy.freeze import open_windows, readable_refusals, record_refusals
from ballast.policy.governance import Governance, policy_conditions
from ballast.policy.reports import PolicyAudit, bounded, cut
from ballast.policy.rules import standing_findings
from ballast.policy.shards import (
    STALE_SHARD_SECONDS,
    claims_of,
    coverage,
    shard_entries,
    sharded_condition,
    summed_violations,
)

logger = logging.getLogger(__name__)

MAX_LISTED_NAMESPACES = 200
"""Bounds the governed namespaces a status lists (violations: policy/reports.py's bounds)."""


AUDIT_NAMESPACES_PER_TURN = 20
"""Namespaces audited before the event loop serves others (admission above all): at 10,000 workloads one
audit takes a few hundred milliseconds of CPU, which must not wait in front of an admission request."""


async def audit(runtime: Runtime, policy: ParsedPolicy, governance: Governance) -> list[AuditViolation]:
    """Every finding about existing workloads in the policy's namespaces (Warn/Audit, or predating it); a
    shard audits its own namespaces only."""
    violations = []
    moment = now()
    ours = [namespace for namespace in governance.governed.get(policy.name, []) if runtime.in_shard(namespace)]
    for turn, namespace in enumerate(ours):
        if turn and not turn % AUDIT_NAMESPACES_PER_TURN:
            await asyncio.sleep(0)  # each namespace is read whole from the indexes, between turns
        context = runtime.admission_context(namespace, moment)
        if context is None:
            continue
        canaries = release_canaries(runtime.releases.get(namespace, []))
        workloads = [w for w in runtime.workloads.get(namespace, []) if not w.is_release_canary(canaries)]
        for workload in sorted(workloads, key=lambda w: (w.kind, w.name)):
            for finding in standing_findings(workload.kind, namespace, workload.name, workload.labels,
                                             workload.annotations, context):
                if finding.blocking:
                    violations.append(AuditViolation(kind=workload.kind, namespace=namespace, name=workload.name,
                                                     rule=finding.rule.value, message=finding.message))
    return violations


async def audited(runtime: Runtime, policy: ParsedPolicy, governance: Governance) -> list[AuditViolation]:
    """The policy's audit, done again only when something it reads changed since the last one.

    The resync asks for a policy pass every few seconds for the freeze windows; at 10,000 workloads an audit
    costs a few hundred ms of the event loop admission shares, and its findings do not depend on the clock.
    """
    inputs = runtime.audit_inputs  # read first: a change during the audit's turns makes the next pass audit
    done = runtime.audits.get(policy.name)
    if done is not None and done[0] == inputs:
        return done[1]
    violations = await audit(runtime, policy, governance)
    runtime.audits[policy.name] = (inputs, violations)
    return violations


async def reconcile_policies(runtime: Runtime, _key: object = None) -> None:
    """Recompute every ReleasePolicy's status from the indexes and the clock; keep webhooks in step."""
    governance = runtime.governance()
    moment = now()
    parsed = runtime.parsed_policies()
    await reconcile_webhook_configuration(runtime, parsed)
    lapsed = await lapsed_leases(runtime, parsed)
    failed = []
    audits = []
    for policy in parsed:
        try:
            violations = await reconcile_policy(runtime, policy, governance, moment, lapsed)
            audits.append(PolicyAudit(policy.name, policy.snapshot["metadata"].get("uid", ""), violations))
        except Exception:
            # One policy's trouble never holds up the others' status; the Coalescer retries the pass.
            logger.exception("The status of ReleasePolicy %s could not be written.", policy.name)
            failed.append(policy.name)
    if not failed:  # a failed policy's reports stand until its status can be written
        await publish_reports(audits, moment, runtime.in_shard)
    if failed:
        raise RuntimeError(f"the status of ReleasePolicies {', '.join(failed)} could not be written (logged above)")


async def reconcile_policy(runtime: Runtime, policy: ParsedPolicy, governance: Governance, moment: datetime,
                           lapsed: frozenset[str] = frozenset()) -> list[AuditViolation]:
    """Write one ReleasePolicy's status; return its violations (for the PolicyReports)."""
    snap = policy.snapshot
    governed = governance.governed.get(policy.name, [])
    freezes = [
        ActiveFreeze(name=w.window.name, tiers=w.window.tiers, ends_at=w.ends_at)
        for w in (open_windows(policy.spec.freeze_windows, moment) if policy.spec else [])
    ]
    violations = await audited(runtime, policy, governance)
    POLICY_VIOLATIONS.labels(policy=policy.name).set(len(violations))
    export_freezes(policy, freezes)
    observed = policy_conditions(policy.name, governance, policy.invalid)
    sharded: dict[str, Any] = {}
    if runtime.options.shard is not None:
        sharded, condition = shard_part(runtime, policy, governed, violations, lapsed)
        observed.append(condition)
    conditions, changed = updated_conditions(snap, observed)
    # Only trimmed here: the replica that refused a change lists it (record_answered_refusals).
    refusals = record_refusals(readable_refusals((snap.get("status") or {}).get("freezeRefusals")), [], moment)
    owned = {
        "observedGeneration": snap["metadata"].get("generation"),
        "conditions": conditions,
        "governedNamespaces": governed[:MAX_LISTED_NAMESPACES],
        "governedNamespaceCount": len(governed),
        "activeFreezes": [f.to_wire() for f in freezes],
        "frozenTiers": ",".join(sorted({tier.value for f in freezes for tier in f.tiers})),
        "violationCount": len(violations),
        "violations": listed_violations(violations),
        "freezeRefusals": [r.to_wire() for r in refusals],
        **sharded,
    }
    ref = CustomObjectRef("releasepolicies", policy.name)
    if await write_status(ref, snap, owned):
        post_condition_events(snap, changed)
    return violations


def shard_part(runtime: Runtime, policy: ParsedPolicy, governed: list[str], violations: list[AuditViolation],
               lapsed: frozenset[str]) -> tuple[dict[str, Any], Observation]:
    """A shard's entry in the policy's status, the sums over every running shard's entry, and ``Sharded``.

    Every shard writes only its own entry, and sums what the entries say in the status it read; the write is
    conditional on that status's resourceVersion, so two shards never overwrite each other's entry (the one
    that meets a conflict writes again at its next pass, from the other's entry).
    """
    shard = runtime.options.shard
    assert shard is not None
    own = ShardStatus(
        name=shard.name, selector=shard.selector_text, lease=runtime.options.lease or "",
        governed_namespace_count=sum(1 for namespace in governed if runtime.in_shard(namespace)),
        violation_count=len(violations), violations=[],
    ).to_wire()
    own["violations"] = listed_violations(violations)
    previous = (policy.snapshot.get("status") or {}).get("shards") or []
    stopped = {claim.name for claim in claims_of(previous) if claim.name != shard.name and claim.lease in lapsed}
    entries = shard_entries(own, previous, stopped)
    count, listed = summed_violations(entries)
    entry_claims = claims_of(entries)
    found = coverage(governed, runtime.namespace_labels(), entry_claims)
    return ({"shards": entries, "violationCount": count, "violations": listed},
            sharded_condition(policy.name, entry_claims, found))


async def lapsed_leases(runtime: Runtime, parsed: list[ParsedPolicy]) -> frozenset[str]:
    """The Leases of the other shards named in the policies' statuses whose shard has stopped: each read once
    per pass, however many policies name it."""
    shard = runtime.options.shard
    if shard is None:
        return frozenset()
    leases = {claim.lease for policy in parsed
              for claim in claims_of((policy.snapshot.get("status") or {}).get("shards") or [])
              if claim.name != shard.name}
    return frozenset([lease for lease in sorted(leases) if await lease_lapsed(runtime, lease)])


async def lease_lapsed(runtime: Runtime, lease: str) -> bool:
    """Whether the shard of this Lease has stopped: the Lease is gone, or has not changed (been renewed) for
    ``STALE_SHARD_SECONDS`` by this operator's clock (never compared with the other node's clock).

    A Lease that cannot be read (the operator may not, or the API server fails) keeps its shard: a running
    shard dropped by mistake would show its namespaces as without a shard, and fight over nothing.
    """
    try:
        record = await asyncio.to_thread(read_lease, lease)
    except kubernetes.client.ApiException as error:
        logger.warning("The Lease %s of another shard could not be read (%s %s), so that shard counts as running: "
                       "grant the operator get on leases in its namespace (the chart does for a shard).",
                       lease, error.status, error.reason)
        return False
    if record is None:
        runtime.lease_sightings.pop(lease, None)
        return True
    sighting = observe(runtime.lease_sightings.get(lease), record, time.monotonic())
    runtime.lease_sightings[lease] = sighting
    return time.monotonic() - sighting.since >= STALE_SHARD_SECONDS


async def record_answered_refusals(runtime: Runtime, name: str) -> None:
    """List in ReleasePolicy ``name``'s status the changes its freeze windows refused in this replica.

    Every replica does this for its own answers, follower or leader: a refused change never reaches the
    API server, so only the replica that answered knows of it, and losing the record with a leader that
    dies would hide it from the scoreboard. Read fresh and written conditional on the resourceVersion, so
    this and the leader's pass (which trims the list, under the same precondition) never overwrite each
    other; a conflict reads again.
    """
    pending = runtime.pending_refusals.get(name, [])
    custom = kubernetes.client.CustomObjectsApi(api_client())
    for _ in range(5):
        if not pending:
            return
        try:
            snap = await asyncio.to_thread(custom.get_cluster_custom_object, GROUP, VERSION, "releasepolicies", name)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
            del runtime.pending_refusals[name]  # the policy was deleted: nowhere to list them
            return
        taken = len(pending)
        refusals = record_refusals(readable_refusals((snap.get("status") or {}).get("freezeRefusals")),
                                   pending[:taken], now())
        if await write_status(CustomObjectRef("releasepolicies", name), snap,
                              {"freezeRefusals": [r.to_wire() for r in refusals]}) is not None:
            del pending[:taken]  # refusals recorded meanwhile wait for the next pass
    if pending:
        raise RuntimeError(f"the freeze refusals of ReleasePolicy {name} met a conflict five times in a row")


def listed_violations(violations: list[AuditViolation]) -> list[dict[str, Any]]:
    """The violations a status lists: the first ones within policy/reports.py's bounds, messages cut.

    ``violationCount`` counts them all; the bound keeps the object far below etcd's limit however long
    the annotations quoted in the messages are.
    """
    return bounded(v.model_copy(update={"message": cut(v.message)}).to_wire() for v in violations)


def export_freezes(policy: ParsedPolicy, open_now: list[ActiveFreeze]) -> None:
    """1 for every (window, tier) open now, 0 for the policy's other windows, so dashboards see both."""
    open_pairs = {(f.name, tier.value) for f in open_now for tier in f.tiers}
    for window in policy.spec.freeze_windows if policy.spec else []:
        for tier in window.tiers:
            FREEZE_ACTIVE.labels(policy=policy.name, window=window.name, tier=tier.value).set(
                1 if (window.name, tier.value) in open_pairs else 0)
