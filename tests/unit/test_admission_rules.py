"""Every admission rule and its message, as pure functions."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from ballast.api.common import RiskTier
from ballast.api.releasepolicy import AdmissionMode, ReleasePolicySpec
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.policy.admission import (
    ROLLED_BACK_ANNOTATION,
    AdmissionContext,
    NamedOwnership,
    Rule,
    WorkloadRequest,
    evaluate,
    never_refused,
)
from ballast.policy.workloads import template_hash

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday
ANNOTATIONS = {
    "ballast.dev/owner": "payments",
    "ballast.dev/alerts": "CheckoutHighErrorRate,CheckoutLatency",
    "ballast.dev/runbook": "https://runbooks.example.com/checkout",
}


def workload(annotations=None, labels=None, image="app:1", replicas=3, kind="Deployment"):
    labels = {"app": "checkout"} if labels is None else labels
    return {
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": "checkout", "namespace": "shop", "labels": labels,
                     "annotations": dict(ANNOTATIONS if annotations is None else annotations)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": image}]}}},
    }


def create(new, kind="Deployment"):
    return WorkloadRequest("CREATE", kind, "shop", "checkout", new=new, username="alice")


def update(old, new):
    return WorkloadRequest("UPDATE", "Deployment", "shop", "checkout", new=new, old=old, username="alice")


def so(name="checkout", owner="payments", tier="medium", selector=None):
    return NamedOwnership(name, ServiceOwnershipSpec.model_validate({
        "selector": {"matchLabels": selector or {"app": "checkout"}}, "owner": owner, "riskTier": tier,
        "runbook": "https://runbooks.example.com/checkout"}))


def context(policy=None, ownerships=(), known_alerts=None, now=NOW, name="default"):
    return AdmissionContext(name, ReleasePolicySpec.model_validate(policy or {}), list(ownerships), now, known_alerts)


FRIDAY_FREEZE = {"freezeWindows": [{"name": "weekend", "schedule": "0 18 * * 5", "duration": "62h",
                                    "timeZone": "UTC", "tiers": ["critical", "high"],
                                    "reason": "nobody watches releases on weekends"}]}
SATURDAY = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class TestRequiredAnnotations:
    def test_complete_workload_is_admitted(self):
        decision = evaluate(create(workload()), context())
        assert decision.allowed and decision.findings == []

    def test_exact_message_for_missing_runbook(self):
        annotations = {k: v for k, v in ANNOTATIONS.items() if k != "ballast.dev/runbook"}
        decision = evaluate(create(workload(annotations)), context())
        assert not decision.allowed
        assert decision.refusal == (
            "Deployment shop/checkout is missing annotation ballast.dev/runbook: add an http(s) URL of the "
            "service's runbook (ReleasePolicy default, rule required-annotations)."
        )

    def test_every_missing_annotation_is_reported_at_once(self):
        decision = evaluate(create(workload({})), context())
        assert [f.rule for f in decision.findings] == [Rule.REQUIRED_ANNOTATIONS] * 3

    @pytest.mark.parametrize(("key", "value"), [
        ("ballast.dev/owner", "Payments Team"),
        ("ballast.dev/owner", ""),
        ("ballast.dev/alerts", ""),
        ("ballast.dev/alerts", " , ,"),
        ("ballast.dev/runbook", "wiki/checkout"),
        ("ballast.dev/runbook", "ftp://example.com/runbook"),
        ("ballast.dev/runbook", "x" * 5000),
    ])
    def test_malformed_values_refused(self, key, value):
        decision = evaluate(create(workload({**ANNOTATIONS, key: value})), context())
        assert not decision.allowed
        assert key in decision.refusal

    @pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
    def test_other_workload_kinds(self, kind):
        decision = evaluate(create(workload({}, kind=kind), kind=kind), context())
        assert decision.refusal.startswith(f"{kind} shop/checkout is missing")

    def test_policy_specific_keys(self):
        policy = {"admission": {"requiredAnnotations": {"owner": "example.com/team"}}}
        decision = evaluate(create(workload()), context(policy))
        assert "is missing annotation example.com/team" in decision.refusal


class TestOwnership:
    def test_owner_must_match_service_ownership(self):
        decision = evaluate(create(workload()), context(ownerships=[so(owner="search")]))
        (finding,) = decision.findings
        assert finding.rule is Rule.OWNERSHIP
        assert "its ServiceOwnership says 'search'" in finding.message

    def test_matching_owner_admitted(self):
        assert evaluate(create(workload()), context(ownerships=[so()])).allowed

    def test_unselected_ownership_is_ignored(self):
        other = so(name="cart", owner="search", selector={"app": "cart"})
        assert evaluate(create(workload()), context(ownerships=[other])).allowed

    def test_workload_selected_twice_is_refused(self):
        decision = evaluate(create(workload()), context(ownerships=[so("a"), so("b", selector={"app": "checkout"})]))
        assert [f.rule for f in decision.findings] == [Rule.AMBIGUOUS_OWNERSHIP]
        assert "several ServiceOwnerships (a, b)" in decision.refusal


class TestAlertsExist:
    POLICY = {"admission": {"verifyAlertsExist": True}}

    def test_all_alerts_loaded(self):
        known = frozenset({"CheckoutHighErrorRate", "CheckoutLatency"})
        assert evaluate(create(workload()), context(self.POLICY, known_alerts=known)).allowed

    def test_missing_alert_refused_by_name(self):
        decision = evaluate(create(workload()), context(self.POLICY, known_alerts=frozenset({"CheckoutLatency"})))
        assert not decision.allowed
        assert "CheckoutHighErrorRate" in decision.refusal and "rule alerts-exist" in decision.refusal

    def test_prometheus_unreachable_degrades_to_a_warning(self):
        decision = evaluate(create(workload()), context(self.POLICY, known_alerts=None))
        assert decision.allowed
        assert "Prometheus is unreachable" in decision.warnings[0]

    def test_not_checked_unless_the_policy_asks(self):
        assert evaluate(create(workload()), context(known_alerts=frozenset())).allowed


class TestFreezeWindows:
    def test_frozen_tier_refused_with_window_and_end(self):
        decision = evaluate(create(workload()), context(FRIDAY_FREEZE, [so(tier="critical")], now=SATURDAY))
        assert not decision.allowed
        assert decision.findings[0].rule is Rule.FREEZE_WINDOW
        assert "frozen by window weekend (nobody watches releases on weekends) until 2026-11-30T08:00:00+00:00" \
            in decision.refusal

    def test_a_refused_change_is_described_for_the_scoreboard(self):
        decision = evaluate(create(workload()), context(FRIDAY_FREEZE, [so(tier="critical")], now=SATURDAY))
        frozen = decision.frozen
        assert (frozen.window, frozen.tier, frozen.team) == ("weekend", RiskTier.CRITICAL, "payments")
        assert (frozen.kind, frozen.name, frozen.at) == ("Deployment", "checkout", SATURDAY)
        assert len(frozen.revision) == 16

    def test_break_glass_is_not_a_frozen_change(self):
        body = workload()
        body["metadata"]["annotations"]["ballast.dev/emergency"] = "INC-1"
        decision = evaluate(create(body), context(FRIDAY_FREEZE, [so(tier="critical")], now=SATURDAY))
        assert decision.allowed and decision.frozen is None and decision.break_glass is not None

    def test_unfrozen_tier_passes(self):
        assert evaluate(create(workload()), context(FRIDAY_FREEZE, [so(tier="low")], now=SATURDAY)).allowed

    def test_unowned_workload_counts_as_medium(self):
        freeze_medium = {"freezeWindows": [{**FRIDAY_FREEZE["freezeWindows"][0], "tiers": ["medium"]}]}
        assert not evaluate(create(workload()), context(freeze_medium, now=SATURDAY)).allowed

    def test_outside_the_window_passes(self):
        assert evaluate(create(workload()), context(FRIDAY_FREEZE, [so(tier="critical")], now=NOW)).allowed

    def test_scale_only_change_passes_during_a_freeze(self):
        old = workload()
        decision = evaluate(update(old, workload(replicas=10)), context(FRIDAY_FREEZE, [so(tier="critical")],
                                                                         now=SATURDAY))
        assert decision.allowed and decision.findings == []

    def test_metadata_only_change_is_checked_but_not_frozen(self):
        old, new = workload(), workload()
        new["metadata"]["labels"] = {**new["metadata"]["labels"], "extra": "x"}
        new["spec"]["template"] = copy.deepcopy(old["spec"]["template"])
        decision = evaluate(update(old, new), context(FRIDAY_FREEZE, [so(tier="critical")], now=SATURDAY))
        assert decision.allowed

    def test_break_glass_admits_and_records_who(self):
        new = workload({**ANNOTATIONS, "ballast.dev/emergency": "INC-4711"}, image="app:2")
        decision = evaluate(update(workload(), new), context(FRIDAY_FREEZE, [so(tier="critical")], now=SATURDAY))
        assert decision.allowed
        assert (decision.break_glass.window, decision.break_glass.reason, decision.break_glass.username) == (
            "weekend", "INC-4711", "alice")

    def test_stale_break_glass_does_not_count_again(self):
        with_emergency = {**ANNOTATIONS, "ballast.dev/emergency": "INC-4711"}
        decision = evaluate(update(workload(with_emergency), workload(with_emergency, image="app:3")),
                            context(FRIDAY_FREEZE, [so(tier="critical")], now=SATURDAY))
        assert not decision.allowed
        assert "set annotation ballast.dev/emergency to a new reason" in decision.refusal

    def test_break_glass_never_passes_ownership_checks(self):
        new = workload({"ballast.dev/emergency": "INC-1"})
        decision = evaluate(create(new), context(FRIDAY_FREEZE, [so(tier="critical")], now=SATURDAY))
        assert not decision.allowed
        assert {f.rule for f in decision.findings} == {Rule.REQUIRED_ANNOTATIONS}


class TestRolledBackRevision:
    def rolled_back(self, new, when):
        old = workload()
        old["metadata"]["annotations"][ROLLED_BACK_ANNOTATION] = json.dumps(
            {template_hash(new["spec"]["template"]): when.isoformat()})
        return old

    def test_recently_rolled_back_template_refused(self):
        bad = workload(image="app:bad")
        decision = evaluate(update(self.rolled_back(bad, NOW - timedelta(hours=1)), bad), context())
        assert not decision.allowed
        assert decision.findings[0].rule is Rule.ROLLED_BACK_REVISION
        assert "set annotation ballast.dev/retry" in decision.refusal

    def test_retry_lets_it_through(self):
        bad = workload({**ANNOTATIONS, "ballast.dev/retry": "fixed-config"}, image="app:bad")
        assert evaluate(update(self.rolled_back(bad, NOW - timedelta(hours=1)), bad), context()).allowed

    def test_block_period_expires(self):
        bad = workload(image="app:bad")
        assert evaluate(update(self.rolled_back(bad, NOW - timedelta(hours=25)), bad), context()).allowed
        policy = {"rollbackBlockPeriod": "48h"}
        assert not evaluate(update(self.rolled_back(bad, NOW - timedelta(hours=25)), bad), context(policy)).allowed

    def test_other_templates_unaffected(self):
        bad, good = workload(image="app:bad"), workload(image="app:good")
        assert evaluate(update(self.rolled_back(bad, NOW), good), context()).allowed

    @pytest.mark.parametrize("garbage", ["not json", "[]", '{"x": 5}', '{"%s": "yesterday"}'])
    def test_garbage_annotation_is_ignored(self, garbage):
        bad = workload(image="app:bad")
        old = workload()
        old["metadata"]["annotations"][ROLLED_BACK_ANNOTATION] = garbage.replace(
            "%s", template_hash(bad["spec"]["template"]))
        assert evaluate(update(old, bad), context()).allowed


class TestNeverRefused:
    def test_delete(self):
        assert never_refused(WorkloadRequest("DELETE", "Deployment", "shop", "checkout", old=workload({})))

    @pytest.mark.parametrize("subresource", ["status", "scale"])
    def test_subresources(self, subresource):
        request = WorkloadRequest("UPDATE", "Deployment", "shop", "checkout", new=workload({}), old=workload({}),
                                  subresource=subresource)
        assert evaluate(request, context()).allowed

    def test_scale_only_update_of_a_violating_workload(self):
        assert evaluate(update(workload({}), workload({}, replicas=7)), context()).allowed

    def test_object_being_deleted(self):
        new = workload({})
        new["metadata"]["deletionTimestamp"] = "2026-11-25T12:00:00Z"
        assert evaluate(update(workload({}), new), context()).allowed

    def test_image_change_of_a_violating_workload_is_checked(self):
        assert not evaluate(update(workload({}), workload({}, image="app:2")), context()).allowed


class TestModes:
    def test_warn_admits_with_warnings(self):
        decision = evaluate(create(workload({})), context({"admission": {"mode": "Warn"}}))
        assert decision.allowed and decision.mode is AdmissionMode.WARN
        assert len(decision.warnings) == 3 and decision.refusal is None

    def test_audit_admits_silently_but_keeps_findings(self):
        decision = evaluate(create(workload({})), context({"admission": {"mode": "Audit"}}))
        assert decision.allowed and decision.warnings == []
        assert len(decision.findings) == 3

    def test_enforce_refuses(self):
        decision = evaluate(create(workload({})), context())
        assert not decision.allowed and decision.warnings == []
