"""ReleasePolicy status: governed namespaces, overlaps, validity and the freeze windows open right now."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import kubernetes

from ballast.api.common import GROUP, VERSION
from ballast.api.releasepolicy import ActiveFreeze
from ballast.controllers.runtime import Runtime, now, post_condition_events, updated_conditions
from ballast.kube.client import CustomObjectRef, update_status
from ballast.policy.freeze import open_windows
from ballast.policy.governance import policy_conditions

logger = logging.getLogger(__name__)

MAX_LISTED_NAMESPACES = 200
"""Bound on the namespaces listed in a status, so one object never grows without limit."""


async def reconcile_policies(runtime: Runtime, _key: object = None) -> None:
    """Recompute the status of every ReleasePolicy from the indexes and the clock."""
    governance = runtime.governance()
    moment = now()
    for snap, spec, invalid in runtime.parsed_policies():
        name = snap["metadata"]["name"]
        governed = governance.governed.get(name, [])
        freezes = [
            ActiveFreeze(name=w.window.name, tiers=w.window.tiers, ends_at=w.ends_at)
            for w in (open_windows(spec.freeze_windows, moment) if spec else [])
        ]
        frozen = sorted({tier.value for f in freezes for tier in f.tiers})
        conditions, changed = updated_conditions(snap, policy_conditions(name, governance, invalid))
        owned = {
            "observedGeneration": snap["metadata"].get("generation"),
            "conditions": conditions,
            "governedNamespaces": governed[:MAX_LISTED_NAMESPACES],
            "governedNamespaceCount": len(governed),
            "activeFreezes": [f.to_wire() for f in freezes],
            "frozenTiers": ",".join(frozen),
        }
        ref = CustomObjectRef("releasepolicies", name)
        try:
            written = await asyncio.to_thread(
                update_status, ref, snap.get("status"), owned, snap["metadata"].get("resourceVersion")
            )
        except kubernetes.client.ApiException as error:
            if error.status in (404, 409):
                continue  # Deleted or changed meanwhile: its own event brings a fresh pass.
            raise
        if written:
            post_condition_events(snap, changed)


@kopf.on.event(GROUP, VERSION, "releasepolicies")
def policy_changed(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    runtime.policy_reconciler.request("all")
    # Required annotation keys may have changed for every governed namespace.
    for namespace in list(runtime.ownerships.keys()):
        runtime.ownership_reconciler.request(namespace)


@kopf.on.event("namespaces")
def namespace_changed(name: str, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    runtime.policy_reconciler.request("all")
    runtime.ownership_reconciler.request(name)
