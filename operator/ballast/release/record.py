"""The Release record of one change to a Deployment's pod template, as a pure function of what is known.

The shell (``controllers/releases.py``) reads the Deployment, its stable ReplicaSet, the governing policy
and who answers for the workload (:func:`ballast.policy.ownership.responsibility`, the rule admission
judges by); this module turns them into the object to create. Nothing here reads the clock or the API.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ballast.api.common import API_VERSION, RiskTier, stricter
from ballast.api.release import FINAL_PHASES, ReleaseSpec, UserInfo, created_by_operator
from ballast.api.releasepolicy import ReleasePolicySpec
from ballast.api.revisions import images, template_hash
from ballast.api.vocabulary import (
    CHANGE_TYPE_ANNOTATION,
    CHANGED_BY_ANNOTATION,
    DEFAULT_CHANGE_TYPE,
    DEPLOYMENT_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PENDING_EMERGENCY_ANNOTATION,
    PENDING_TIER_ANNOTATION,
    SERVICE_LABEL,
    ChangeType,
    label_value,
)


@dataclass(frozen=True)
class Change:
    """A governed Deployment's pending change and what the shell found out about it."""

    deployment: Mapping[str, Any]
    """The Deployment as the API server holds it, paused on the new template."""
    stable_template: Mapping[str, Any] | None
    """The pod template that ran before the change (its newest ReplicaSet's), None for a first release."""
    policy_name: str
    policy: ReleasePolicySpec
    service: str
    """The ServiceOwnership that answers for the Deployment ("" when none, or several, select it)."""
    team: str
    tier: RiskTier
    """The Deployment's tier by its ServiceOwnerships now."""


def release_name(deployment: str, revision: str, attempt: int) -> str:
    return f"{deployment}-{revision[:10]}" + (f"-{attempt}" if attempt > 1 else "")


def free_release_name(deployment: str, revision: str, attempt: int, taken: Collection[str]) -> str:
    """The name of the ``attempt``-th release of a revision, skipping names a Release not ours squats."""
    while release_name(deployment, revision, attempt) in taken:
        attempt += 1
    return release_name(deployment, revision, attempt)


def name_for_new_release(deployment: Mapping[str, Any], revision: str,
                         releases: Collection[Mapping[str, Any]]) -> str | None:
    """The name of the Release to create for ``deployment``'s pending ``revision``; None while one is open.

    ``releases`` is the namespace's Releases as *one* snapshot. Both answers must come from the same view:
    had "none of ours is open" been read before the index caught up with a Release just created and "which
    names are taken" after, the second Release of one change would get the next free name (``-2``), and two
    releases would fight over one canary. From one view, a Release the view does not show yet is given its
    own name again, and the API server refuses the duplicate (409).
    """
    name = deployment["metadata"]["name"]
    # Only the operator's own Releases of this very Deployment count: one anybody else made is never adopted.
    same = [r for r in releases
            if (r.get("spec") or {}).get("deployment") == name and created_by_operator(r, deployment)
            and (r.get("spec") or {}).get("toRevision") == revision]
    final = {phase.value for phase in FINAL_PHASES}
    if any((r.get("status") or {}).get("phase") not in final for r in same):
        return None
    taken = {r["metadata"]["name"] for r in releases}
    return free_release_name(name, revision, len(same) + 1, taken)


def release_spec(change: Change) -> ReleaseSpec:
    """What the Release says about the change: fixed at creation, never rewritten."""
    metadata = change.deployment["metadata"]
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    tier = change.tier
    if annotations.get(PENDING_TIER_ANNOTATION) in {t.value for t in RiskTier}:
        # As judged at admission: a label dropped together with the change does not lower its tier.
        tier = stricter(tier, RiskTier(annotations[PENDING_TIER_ANNOTATION]))
    change_type = annotations.get(CHANGE_TYPE_ANNOTATION, "")
    template = change.deployment["spec"]["template"]
    return ReleaseSpec(
        deployment=metadata["name"],
        service=change.service,
        owner=change.team,
        tier=tier,
        policy=change.policy_name,
        from_revision=template_hash(change.stable_template) if change.stable_template is not None else "",
        to_revision=template_hash(template),
        from_images=images(change.stable_template),
        to_images=images(template),
        changed_by=_user(annotations.get(CHANGED_BY_ANNOTATION, "")),
        change_type=ChangeType(change_type) if change_type in set(ChangeType) else DEFAULT_CHANGE_TYPE,
        # Break-glass as of the change itself (the webhook records it only when that request set it).
        emergency=annotations.get(PENDING_EMERGENCY_ANNOTATION) or None,
        steps=change.policy.tiers.for_tier(tier).steps,
    )


def release_body(change: Change, name: str) -> dict[str, Any]:
    """The Release to create: labelled as the operator's and owned by the Deployment (by UID)."""
    metadata = change.deployment["metadata"]
    spec = release_spec(change)
    return {
        "apiVersion": API_VERSION,
        "kind": "Release",
        "metadata": {
            "name": name,
            "namespace": metadata["namespace"],
            "labels": {DEPLOYMENT_LABEL: label_value(spec.deployment),
                       SERVICE_LABEL: label_value(spec.service or spec.deployment),
                       MANAGED_BY_LABEL: MANAGED_BY},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.deployment,
                                 "uid": metadata["uid"], "blockOwnerDeletion": False}],
        },
        "spec": spec.to_wire(),
    }


def _user(text: str) -> UserInfo | None:
    """The change's author as the webhook recorded it; None when the record is missing or unreadable."""
    try:
        return UserInfo.model_validate(json.loads(text))
    except (ValueError, ValidationError):
        return None
