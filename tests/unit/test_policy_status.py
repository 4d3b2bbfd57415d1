"""A ReleasePolicy's status stays bounded in bytes, and one bad entry in it costs only itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ballast.api.common import RiskTier
from ballast.api.releasepolicy import AuditViolation, FreezeRefusal, RequiredAnnotations
from ballast.controllers.policies import listed_violations
from ballast.policy.freeze import readable_refusals, record_refusals
from ballast.policy.reports import MAX_LISTED as MAX_LISTED_VIOLATIONS
from ballast.policy.reports import MAX_LISTED_BYTES as MAX_VIOLATIONS_BYTES
from ballast.policy.reports import MAX_MESSAGE as MAX_VIOLATION_MESSAGE
from ballast.policy.workloads import annotation_problems

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEYS = RequiredAnnotations()


def violation(name: str, runbook: str) -> AuditViolation:
    annotations = {KEYS.owner: "payments", KEYS.alerts: "CheckoutDown", KEYS.runbook: runbook}
    [problem] = annotation_problems(annotations, KEYS)
    return AuditViolation(kind="Deployment", namespace="shop", name=name, rule="required-annotations",
                          message=problem.sentence(f"Deployment shop/{name}"))


def test_violations_with_huge_annotations_stay_small():
    # Seven workloads whose 250 KiB runbook annotation is not a URL made a 1.6 MiB status before.
    violations = [violation(f"svc-{i}", "x" * 250_000) for i in range(7)]
    listed = listed_violations(violations)
    assert len(json.dumps(listed).encode()) < MAX_VIOLATIONS_BYTES
    assert [v["name"] for v in listed] == [f"svc-{i}" for i in range(7)]
    assert all(len(v["message"]) < 400 for v in listed)  # the value is named, not repeated


def test_long_messages_are_cut_and_the_list_is_bounded_by_bytes_and_count():
    long = [AuditViolation(kind="Deployment", namespace="shop", name=f"svc-{i}", rule="alerts-exist",
                           message="m" * 100_000) for i in range(200)]
    listed = listed_violations(long)
    assert all(len(v["message"]) == MAX_VIOLATION_MESSAGE and v["message"].endswith("…") for v in listed)
    assert len(json.dumps(listed).encode()) <= MAX_VIOLATIONS_BYTES
    assert [v["name"] for v in listed] == [f"svc-{i}" for i in range(len(listed))]  # the first ones, in order
    short = [violation(f"svc-{i}", "runbook") for i in range(200)]
    assert len(listed_violations(short)) == MAX_LISTED_VIOLATIONS


def refusal(minutes_ago: int, name: str = "checkout") -> dict:
    return FreezeRefusal(at=NOW - timedelta(minutes=minutes_ago), kind="Deployment", namespace="shop", name=name,
                         revision="r1", tier=RiskTier.CRITICAL, window="weekend").to_wire()


def test_a_bad_freeze_refusal_entry_is_skipped_and_the_rest_kept():
    listed = [
        refusal(5, "first"),
        {"at": "2026-11-28T11:00:00", "kind": "Deployment", "namespace": "shop", "name": "naive",
         "revision": "r1", "tier": "critical", "window": "weekend"},  # no offset: cannot be ordered with the rest
        {**refusal(4), "tier": "extreme"},
        {"kind": "Deployment"},
        "not an object",
        None,
        refusal(3, "last"),
    ]
    readable = readable_refusals(listed)
    assert [r.name for r in readable] == ["first", "last"]
    assert [r.name for r in record_refusals(readable, [], NOW)] == ["first", "last"]


def test_a_freeze_refusals_field_that_is_not_a_list_reads_as_empty():
    for listed in (None, {}, "x", 5):
        assert readable_refusals(listed) == []
