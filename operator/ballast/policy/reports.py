"""What Ballast publishes as PolicyReports (``wgpolicyk8s.io/v1alpha2``): a policy's audit violations, one
report per namespace, so Policy Reporter and Kyverno users see them beside their other policies.

Pure: the reports are a function of the audit, the reports as they stand (for the time each finding was
first seen) and the clock. ``controllers/reports.py`` writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ballast.api.common import API_VERSION
from ballast.api.releasepolicy import AuditViolation
from ballast.api.vocabulary import MANAGED_BY, MANAGED_BY_LABEL, REPORT_POLICY_LABEL, label_value

REPORT_GROUP = "wgpolicyk8s.io"
REPORT_VERSION = "v1alpha2"
REPORT_PLURAL = "policyreports"
REPORT_NAME = "ballast"
"""Each namespace has one report from Ballast: exactly one policy governs a namespace (policy/governance.py)."""
SOURCE = "ballast"
CATEGORY = "Ballast release guardrails"

MAX_LISTED = 50
MAX_LISTED_BYTES = 64 * 1024
MAX_MESSAGE = 1024
"""Bounds on a listed violation set, by count, JSON size and message length (status.violations and each
report alike), so one object never grows without limit however long the quoted annotations are."""

WORKLOAD_API_VERSIONS = {"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1"}


@dataclass(frozen=True)
class PolicyAudit:
    """One ReleasePolicy's audit: the workloads in its namespaces that break it."""

    name: str
    uid: str
    violations: Sequence[AuditViolation]


def cut(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` in at most ``limit`` characters, an ellipsis marking a cut."""
    return message if len(message) <= limit else message[:limit - 1] + "…"


def bounded(entries: Iterable[dict[str, Any]], max_count: int = MAX_LISTED,
            max_bytes: int = MAX_LISTED_BYTES) -> list[dict[str, Any]]:
    """The first entries, as many as fit in ``max_count`` entries and ``max_bytes`` of JSON."""
    listed: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        size += len(json.dumps(entry).encode())
        if len(listed) == max_count or size > max_bytes:
            break
        listed.append(entry)
    return listed


def _finding_key(result: Mapping[str, Any]) -> tuple[str, str, str, str]:
    resource = (result.get("resources") or [{}])[0]
    return (str(result.get("policy")), str(result.get("rule")), str(resource.get("kind")), str(resource.get("name")))


def _first_seen(report: Mapping[str, Any] | None) -> dict[tuple[str, str, str, str], dict[str, int]]:
    """When each finding the report lists was first seen, so an unchanged finding is an unchanged report."""
    seen = {}
    for result in (report or {}).get("results") or []:
        if isinstance(result, Mapping) and isinstance(result.get("timestamp"), Mapping):
            seen[_finding_key(result)] = dict(result["timestamp"])
    return seen


def _result(policy: str, violation: AuditViolation, moment: dict[str, int],
            seen: Mapping[tuple[str, str, str, str], dict[str, int]]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "source": SOURCE,
        "policy": policy,
        "rule": violation.rule,
        "category": CATEGORY,
        "result": "fail",
        "scored": True,
        "message": cut(violation.message),
        "resources": [{
            "apiVersion": WORKLOAD_API_VERSIONS.get(violation.kind, "apps/v1"),
            "kind": violation.kind, "namespace": violation.namespace, "name": violation.name,
        }],
    }
    result["timestamp"] = seen.get(_finding_key(result), moment)
    return result


def policy_report(audit: PolicyAudit, namespace: str, violations: Sequence[AuditViolation],
                  current: Mapping[str, Any] | None, moment: datetime) -> dict[str, Any]:
    """The PolicyReport listing ``violations`` (all in ``namespace``) of one policy.

    Owned by the ReleasePolicy, so the garbage collector removes it with the policy. ``summary.fail``
    counts every violation; ``results`` lists the first ones within the bounds.
    """
    stamp = moment.astimezone(UTC)
    now = {"seconds": int(stamp.timestamp()), "nanos": 0}
    seen = _first_seen(current)
    return {
        "apiVersion": f"{REPORT_GROUP}/{REPORT_VERSION}",
        "kind": "PolicyReport",
        "metadata": {
            "name": REPORT_NAME,
            "namespace": namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, REPORT_POLICY_LABEL: label_value(audit.name)},
            "ownerReferences": [{"apiVersion": API_VERSION, "kind": "ReleasePolicy", "name": audit.name,
                                 "uid": audit.uid}],
        },
        "summary": {"pass": 0, "fail": len(violations), "warn": 0, "error": 0, "skip": 0},
        "results": bounded(_result(audit.name, v, now, seen) for v in violations),
    }


def desired_reports(audits: Sequence[PolicyAudit], current: Mapping[str, Mapping[str, Any]],
                    moment: datetime) -> dict[str, dict[str, Any]]:
    """Every report Ballast should hold, by namespace: one per namespace where a policy finds a violation.

    ``current`` is the reports as they stand, by namespace. A namespace without violations has no report.
    """
    desired = {}
    for audit in audits:
        by_namespace: dict[str, list[AuditViolation]] = {}
        for violation in audit.violations:
            by_namespace.setdefault(violation.namespace, []).append(violation)
        for namespace, violations in by_namespace.items():
            desired[namespace] = policy_report(audit, namespace, violations, current.get(namespace), moment)
    return desired


def report_changes(desired: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]]
                   ) -> tuple[list[str], list[str], list[str]]:
    """The namespaces whose report to create, to replace (content differs) and to delete."""
    create = sorted(desired.keys() - current.keys())
    delete = sorted(current.keys() - desired.keys())
    replace = sorted(ns for ns in desired.keys() & current.keys() if _content(desired[ns]) != _content(current[ns]))
    return create, replace, delete


def _content(report: Mapping[str, Any]) -> tuple[Any, ...]:
    metadata = report.get("metadata") or {}
    labels = metadata.get("labels") or {}
    ours = {key: labels.get(key) for key in (MANAGED_BY_LABEL, REPORT_POLICY_LABEL)}  # others may add their own
    return (ours, metadata.get("ownerReferences"), report.get("summary"), report.get("results"))
