"""The PolicyReports Ballast publishes: one per namespace, bounded, stable while nothing changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ballast.api.releasepolicy import AuditViolation
from ballast.policy.reports import (
    MAX_LISTED,
    MAX_LISTED_BYTES,
    MAX_MESSAGE,
    PolicyAudit,
    desired_reports,
    report_changes,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def violation(namespace: str, name: str, rule: str = "required-annotations", message: str = "m",
              kind: str = "Deployment") -> AuditViolation:
    return AuditViolation(kind=kind, namespace=namespace, name=name, rule=rule, message=message)


def test_one_report_per_namespace_owned_by_the_policy_and_labelled_for_ballast():
    audit = PolicyAudit("prod", "uid-1", [violation("shop", "cart"), violation("pay", "ledger", kind="StatefulSet"),
                                          violation("shop", "checkout", rule="alerts-exist", message="no alerts")])
    reports = desired_reports([audit], {}, NOW)
    assert sorted(reports) == ["pay", "shop"]
    shop = reports["shop"]
    assert shop["apiVersion"] == "wgpolicyk8s.io/v1alpha2" and shop["kind"] == "PolicyReport"
    assert shop["metadata"]["name"] == "ballast" and shop["metadata"]["namespace"] == "shop"
    assert shop["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "ballast", "ballast.dev/policy": "prod"}
    assert shop["metadata"]["ownerReferences"] == [
        {"apiVersion": "ballast.dev/v1alpha1", "kind": "ReleasePolicy", "name": "prod", "uid": "uid-1"}]
    assert shop["summary"] == {"pass": 0, "fail": 2, "warn": 0, "error": 0, "skip": 0}
    assert [(r["policy"], r["rule"], r["result"], r["message"]) for r in shop["results"]] == [
        ("prod", "required-annotations", "fail", "m"), ("prod", "alerts-exist", "fail", "no alerts")]
    assert shop["results"][1]["resources"] == [
        {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "checkout"}]
    assert reports["pay"]["results"][0]["resources"][0]["kind"] == "StatefulSet"
    assert shop["results"][0]["source"] == "ballast"
    assert shop["results"][0]["timestamp"] == {"seconds": int(NOW.timestamp()), "nanos": 0}


def test_reports_of_several_policies_stay_apart():
    reports = desired_reports([PolicyAudit("a", "1", [violation("ns-a", "x")]),
                               PolicyAudit("b", "2", [violation("ns-b", "y")]),
                               PolicyAudit("c", "3", [])], {}, NOW)
    assert {ns: r["metadata"]["labels"]["ballast.dev/policy"] for ns, r in reports.items()} == {"ns-a": "a",
                                                                                               "ns-b": "b"}


def test_an_unchanged_audit_is_an_unchanged_report_later():
    audit = PolicyAudit("prod", "uid-1", [violation("shop", "cart")])
    first = desired_reports([audit], {}, NOW)
    stored = {"shop": {**first["shop"], "metadata": {**first["shop"]["metadata"], "resourceVersion": "7",
                                                      "labels": {**first["shop"]["metadata"]["labels"],
                                                                 "someone.else/label": "x"}}}}
    later = desired_reports([audit], stored, NOW + timedelta(hours=3))
    assert later["shop"]["results"][0]["timestamp"] == first["shop"]["results"][0]["timestamp"]
    assert report_changes(later, stored) == ([], [], [])


def test_a_new_finding_is_stamped_now_and_the_others_keep_their_time():
    first = desired_reports([PolicyAudit("prod", "u", [violation("shop", "cart")])], {}, NOW)
    later_time = NOW + timedelta(minutes=5)
    later = desired_reports([PolicyAudit("prod", "u", [violation("shop", "cart"), violation("shop", "new")])],
                            first, later_time)
    stamps = {r["resources"][0]["name"]: r["timestamp"]["seconds"] for r in later["shop"]["results"]}
    assert stamps == {"cart": int(NOW.timestamp()), "new": int(later_time.timestamp())}
    assert report_changes(later, first) == ([], ["shop"], [])


def test_changes_create_replace_and_delete():
    old = desired_reports([PolicyAudit("p", "u", [violation("a", "x"), violation("b", "y")])], {}, NOW)
    new = desired_reports([PolicyAudit("p", "u", [violation("b", "y", message="changed"), violation("c", "z")])],
                          old, NOW)
    assert report_changes(new, old) == (["c"], ["b"], ["a"])
    assert report_changes({}, old) == ([], [], ["a", "b"])  # the policy went away, or all was fixed


def test_a_report_is_bounded_like_the_status_and_counts_every_violation():
    many = [violation("shop", f"svc-{i}", message="m" * 100_000) for i in range(500)]
    report = desired_reports([PolicyAudit("p", "u", many)], {}, NOW)["shop"]
    assert report["summary"]["fail"] == 500
    assert 0 < len(report["results"]) <= MAX_LISTED
    assert len(json.dumps(report["results"]).encode()) <= MAX_LISTED_BYTES
    assert all(len(r["message"]) == MAX_MESSAGE and r["message"].endswith("…") for r in report["results"])
    assert [r["resources"][0]["name"] for r in report["results"]] == [f"svc-{i}" for i in
                                                                      range(len(report["results"]))]
    short = desired_reports([PolicyAudit("p", "u", [violation("shop", f"s-{i}") for i in range(500)])], {}, NOW)
    assert len(short["shop"]["results"]) == MAX_LISTED
