"""Every name Ballast writes on objects or reads from them, in one place: annotation keys, labels, the
change types, the default tier.

People write some of these (owner, alerts, runbook, emergency, retry, change-type, and the plugin's
approve/abort/promote), the webhook and the operator write the rest (bookkeeping nobody else may
touch). Modules import them from here, so a key is spelt once.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

from ballast.api.common import GROUP, RiskTier

PREFIX = GROUP
"""Ballast's own annotations and labels live under ``ballast.dev/``; kopf's bookkeeping too."""

# -- what people write on their workloads ---------------------------------------------------------------

OWNER_ANNOTATION = "ballast.dev/owner"
ALERTS_ANNOTATION = "ballast.dev/alerts"
RUNBOOK_ANNOTATION = "ballast.dev/runbook"
OWNERSHIP_ANNOTATIONS = frozenset({OWNER_ANNOTATION, ALERTS_ANNOTATION, RUNBOOK_ANNOTATION})
"""The required annotations' default keys (a policy may rename them)."""
EMERGENCY_ANNOTATION = "ballast.dev/emergency"
"""Break-glass reason: counts only in the request that sets or changes it, and is always recorded."""
RETRY_ANNOTATION = "ballast.dev/retry"
"""Set to a new value to release again a template Ballast rolled back."""
CHANGE_TYPE_ANNOTATION = "ballast.dev/change-type"


class ChangeType(StrEnum):
    """What a change is for; when a service's error budget is spent only some proceed without break-glass."""

    FEATURE = "feature"
    FIX = "fix"
    RELIABILITY = "reliability"
    SECURITY = "security"
    CONFIG = "config"


DEFAULT_CHANGE_TYPE = ChangeType.FEATURE
DEFAULT_TIER = RiskTier.MEDIUM
"""Tier of a workload no ServiceOwnership selects."""

# -- what only the webhook and the operator write on workloads ------------------------------------------

PENDING_ANNOTATION = "ballast.dev/pending-revision"
"""Set by the mutating webhook on a paused Deployment whose template changed; removed when its release ends."""
CHANGED_BY_ANNOTATION = "ballast.dev/changed-by"
"""JSON of the identity that made the pending change, captured at admission."""
PENDING_EMERGENCY_ANNOTATION = "ballast.dev/pending-emergency"
"""The break-glass reason of the pending change, captured at admission only when that change set it."""
PENDING_TIER_ANNOTATION = "ballast.dev/pending-tier"
"""The tier the pending change was judged under at admission: the stricter of the workload's before and after it."""
ROLLED_BACK_ANNOTATION = "ballast.dev/rolled-back-revisions"
"""JSON ``{"<template hash>": "<RFC 3339 time>"}`` of the revisions Ballast rolled back."""
BOOKKEEPING_ANNOTATIONS = frozenset({PENDING_ANNOTATION, CHANGED_BY_ANNOTATION, PENDING_EMERGENCY_ANNOTATION,
                                     PENDING_TIER_ANNOTATION})
"""Dropped from the Deployment when its release ends."""
WEBHOOK_ONLY_ANNOTATIONS = BOOKKEEPING_ANNOTATIONS | {ROLLED_BACK_ANNOTATION}
"""Written only by the mutating webhook and the operator: people's writes to them are undone."""
RELEASE_ANNOTATION = "ballast.dev/release"
"""On a canary Deployment: the Release it belongs to."""
TRACK_LABEL = "ballast.dev/track"
"""Label (on the Deployment, its selector and its pods) that marks the release engine's canaries."""
CANARY_TRACK = "canary"

# -- on Releases ----------------------------------------------------------------------------------------

DEPLOYMENT_LABEL = "ballast.dev/deployment"
"""The Deployment a Release changes (cut to a valid label value)."""
SERVICE_LABEL = "ballast.dev/service"
"""The service a Release belongs to (cut to a valid label value)."""
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "ballast"
"""The label value the operator puts on the Releases it creates; the webhook refuses it from anyone else."""
APPROVE_ANNOTATION = "ballast.dev/approve"
"""Set (to any value) to approve a release of a tier that requires approval."""
APPROVED_BY_ANNOTATION = "ballast.dev/approved-by"
"""JSON identity of the approver, stamped by the webhook when ``approve`` is set (never taken from a person)."""
ABORT_ANNOTATION = "ballast.dev/abort"
"""Set to a reason to roll the release back now."""
PROMOTE_ANNOTATION = "ballast.dev/promote"
"""Set to skip the remaining steps (refused where the tier forbids it)."""

# -- on PolicyReports (wgpolicyk8s.io) -----------------------------------------------------------------

REPORT_POLICY_LABEL = "ballast.dev/policy"
"""On a PolicyReport Ballast writes (with ``MANAGED_BY_LABEL``): the ReleasePolicy whose violations it lists."""

# -- on the operator's own Pods -------------------------------------------------------------------------

LEADER_LABEL = "ballast.dev/leader"
"""Set to "true" on the leader's Pod; the webhook Service selects it."""


def label_value(text: str) -> str:
    """``text`` as a label value: itself when it fits 63 characters, else a cut with a hash that keeps it unique.

    Deployment and ServiceOwnership names may be 253 characters long; label values may not.
    """
    if len(text) <= 63:
        return text
    return f"{text[:52].rstrip('-._')}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"
