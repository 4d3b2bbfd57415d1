"""The annotations on a Deployment that only the webhook and the operator write, as a pure decision.

The release engine trusts what these say: who made the pending change (four eyes), which revision is
pending, the tier it was judged under, whether that change broke glass, and which revisions were rolled
back. People must not be able
to forge or drop them, on a create or on any update: the mutating webhook strips them from a person's
create and restores their stored values on a person's update, and sets them itself when a person's
update changes the pod template. Mutating rather than refusing keeps `kubectl get -o yaml | kubectl
apply -f -` and GitOps tools that replay a whole object working.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ballast.api.common import RiskTier
from ballast.api.revisions import template_hash
from ballast.api.vocabulary import (
    CHANGED_BY_ANNOTATION,
    EMERGENCY_ANNOTATION,
    PENDING_ANNOTATION,
    PENDING_EMERGENCY_ANNOTATION,
    PENDING_TIER_ANNOTATION,
    WEBHOOK_ONLY_ANNOTATIONS,
)
from ballast.policy.rules import newly_set


@dataclass(frozen=True)
class Mutation:
    """What the mutating webhook changes in a person's request."""

    pause: bool = False
    annotations: dict[str, str | None] = field(default_factory=dict)
    """Annotation values to set; None removes the annotation."""


def _annotations(obj: Mapping[str, Any] | None) -> Mapping[str, str]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def mutation(operation: str, old: Mapping[str, Any] | None, new: Mapping[str, Any], identity: str,
             tier: RiskTier) -> Mutation:
    """The webhook's changes to a person's CREATE or UPDATE of a governed Deployment.

    ``identity`` is the requester as JSON, recorded as the author of a template change, and ``tier`` the
    tier admission judged the change under, which its release keeps (so a label dropped in the same
    request escapes neither approval nor the no-skip rule).
    """
    before, after = _annotations(old), _annotations(new)
    wanted: dict[str, str | None] = {key: before.get(key) for key in WEBHOOK_ONLY_ANNOTATIONS}
    pause = False
    if operation == "UPDATE":
        old_template, new_template = (old or {}).get("spec", {}).get("template"), new.get("spec", {}).get("template")
        if old_template != new_template:
            # A template change: held for the release engine, with its author and break-glass as of this request.
            pause = True
            wanted[PENDING_ANNOTATION] = template_hash(new_template)
            wanted[CHANGED_BY_ANNOTATION] = identity
            wanted[PENDING_EMERGENCY_ANNOTATION] = newly_set(old, new, EMERGENCY_ANNOTATION)
            wanted[PENDING_TIER_ANNOTATION] = tier.value
        elif PENDING_ANNOTATION in before:
            # A release is under way: whatever the request says (say, an apply that does not know about
            # spec.paused), the Deployment stays held until the release ends.
            pause = not new.get("spec", {}).get("paused")
    return Mutation(pause, {key: value for key, value in wanted.items() if after.get(key) != value})
