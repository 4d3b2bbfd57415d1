"""Every admission rule and its message, as pure functions."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ballast.api.common import RiskTier, stricter
from ballast.api.release import created_by_operator
from ballast.api.releasepolicy import AdmissionMode, ReleasePolicySpec
from ballast.api.revisions import template_hash
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.api.vocabulary import ROLLED_BACK_ANNOTATION
from ballast.policy.ownership import NamedOwnership, judged_tier
from ballast.policy.rules import (
    AdmissionContext,
    BreakGlass,
    ReleaseRequest,
    Rule,
    WorkloadRequest,
    evaluate,
    judge_ownership_change,
    judge_release_request,
    never_refused,
)
from ballast.policy.workloads import WorkloadSummary

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


class TestCanaryTrack:
    def test_a_person_cannot_label_a_workload_as_a_canary(self):
        labels = {"app": "checkout", "ballast.dev/track": "canary"}
        decision = evaluate(create(workload(labels=labels)), context())
        assert not decision.allowed
        assert decision.refusal == (
            "Deployment shop/checkout carries label ballast.dev/track=canary, which marks the canaries Ballast's "
            "releases run and exempts them from its checks: remove the label (Ballast labels its own canaries) "
            "(ReleasePolicy default, rule canary-track).")

    @given(labels=st.dictionaries(st.sampled_from(["app", "tier", "ballast.dev/track"]),
                                  st.sampled_from(["checkout", "canary", "stable"]), max_size=3),
           mode=st.sampled_from(list(AdmissionMode)))
    def test_the_track_label_is_a_finding_whatever_else_the_workload_says(self, labels, mode):
        decision = evaluate(create(workload(labels=labels)), context({"admission": {"mode": mode.value}}))
        claims = labels.get("ballast.dev/track") == "canary"
        assert (Rule.CANARY_TRACK in {f.rule for f in decision.findings}) == claims
        if claims and mode is AdmissionMode.ENFORCE:
            assert not decision.allowed

    def test_the_label_alone_does_not_make_a_canary(self):
        body = workload(labels={"app": "checkout", "ballast.dev/track": "canary"})
        body["metadata"]["name"] = "checkout-canary"
        body["metadata"]["ownerReferences"] = [{"kind": "Release", "name": "checkout-abc", "uid": "u-1"}]
        summary = WorkloadSummary.from_body(body)
        assert summary.is_release_canary({"u-1": "checkout-canary"})
        assert not summary.is_release_canary({})  # no Release of the operator owns it
        assert not summary.is_release_canary({"u-1": "other-canary"})  # owned by a Release of another Deployment
        body["metadata"]["ownerReferences"] = []
        assert not WorkloadSummary.from_body(body).is_release_canary({"u-1": "checkout-canary"})


class TestTierDowngrade:
    CRITICAL_FREEZE = {"freezeWindows": [{**FRIDAY_FREEZE["freezeWindows"][0], "tiers": ["critical"]}]}

    def test_dropping_the_selected_label_during_a_freeze_needs_break_glass(self):
        old, new = workload(), workload(labels={"app": "checkout-2"})
        decision = evaluate(update(old, new), context(self.CRITICAL_FREEZE, [so(tier="critical")], now=SATURDAY))
        assert not decision.allowed
        assert {f.rule for f in decision.findings} >= {Rule.TIER_DOWNGRADE, Rule.FREEZE_WINDOW}
        assert "Deployment shop/checkout is critical tier, frozen by window weekend" in decision.refusal

        new["metadata"]["annotations"]["ballast.dev/emergency"] = "INC-9"
        decision = evaluate(update(old, new), context(self.CRITICAL_FREEZE, [so(tier="critical")], now=SATURDAY))
        assert decision.allowed and decision.break_glass.window == "weekend"

    def test_a_template_change_that_also_drops_the_label_is_judged_under_the_old_tier(self):
        old, new = workload(), workload(labels={"app": "other"}, image="app:2")
        decision = evaluate(update(old, new), context(self.CRITICAL_FREEZE, [so(tier="critical")], now=SATURDAY))
        assert not decision.allowed
        assert decision.frozen.tier is RiskTier.CRITICAL

    def test_outside_a_freeze_it_is_a_warning_naming_the_ownership(self):
        old, new = workload(), workload(labels={"app": "checkout-2"})
        decision = evaluate(update(old, new), context(ownerships=[so(tier="critical")]))
        assert decision.allowed
        (finding,) = decision.findings
        assert finding.rule is Rule.TIER_DOWNGRADE and not finding.blocking
        assert finding.message.startswith(
            "Deployment shop/checkout leaves ServiceOwnership checkout and goes from critical to medium tier")

    def test_moving_to_a_stricter_ownership_is_not_a_downgrade(self):
        ownerships = [so("a", tier="low"), so("b", tier="high", selector={"app": "b"})]
        decision = evaluate(update(workload(), workload(labels={"app": "b"})), context(ownerships=ownerships))
        assert decision.allowed
        assert [f.rule for f in decision.findings] == [Rule.TIER_DOWNGRADE]  # it still leaves ownership a

    def test_the_tier_a_change_is_judged_under(self):
        ownerships = [so(tier="critical"), so("b", tier="low", selector={"app": "b"})]
        assert judged_tier(workload(), workload(labels={"app": "b"}), ownerships) is RiskTier.CRITICAL
        assert judged_tier(workload(labels={"app": "b"}), workload(), ownerships) is RiskTier.CRITICAL
        assert judged_tier(workload(labels={"app": "b"}), workload(labels={"app": "b"}), ownerships) is RiskTier.LOW

    def test_unchanged_labels_are_no_finding(self):
        assert evaluate(update(workload(), workload(image="app:2")), context(ownerships=[so(tier="critical")])
                        ).findings == []

    @given(old_tier=st.sampled_from(list(RiskTier)), new_tier=st.sampled_from(list(RiskTier)),
           frozen=st.sampled_from(list(RiskTier)), relabel=st.booleans(), image=st.sampled_from(["app:1", "app:2"]))
    def test_no_label_change_takes_a_change_out_of_its_freeze(self, old_tier, new_tier, frozen, relabel, image):
        ownerships = [so("old", tier=old_tier.value), so("new", tier=new_tier.value, selector={"app": "new"})]
        freeze = {"freezeWindows": [{**FRIDAY_FREEZE["freezeWindows"][0], "tiers": [frozen.value]}]}
        new = workload(labels={"app": "new"} if relabel else None, image=image)
        decision = evaluate(update(workload(), new), context(freeze, ownerships, now=SATURDAY))
        changed = relabel or image != "app:1"
        if changed and frozen in (old_tier, new_tier if relabel else old_tier):  # frozen before or after
            assert not decision.allowed and decision.frozen is not None
        if relabel and old_tier != new_tier and stricter(old_tier, new_tier) == old_tier:
            assert Rule.TIER_DOWNGRADE in {f.rule for f in decision.findings}


class TestOwnershipChange:
    FREEZE = {"freezeWindows": [{**FRIDAY_FREEZE["freezeWindows"][0], "tiers": ["critical"]}]}
    WORKLOADS = [("Deployment", "checkout", {"app": "checkout"}), ("Deployment", "cart", {"app": "cart"})]

    def judge(self, old, new, policy=None, now=SATURDAY, old_annotations=None, new_annotations=None):
        def body(spec, annotations):
            return {"metadata": {"annotations": annotations or {}}, "spec": spec.model_dump(by_alias=True)}
        return judge_ownership_change("shop", "checkout", old.spec, new.spec, body(old.spec, old_annotations),
                                      body(new.spec, new_annotations), self.WORKLOADS, "alice",
                                      context(policy or self.FREEZE, now=now))

    def test_lowering_the_tier_during_its_freeze_is_refused(self):
        decision = self.judge(so(tier="critical"), so(tier="medium"))
        assert not decision.allowed
        assert decision.refusal.startswith("ServiceOwnership shop/checkout is critical tier, frozen by window weekend")
        assert "lowers riskTier from critical to medium" in decision.findings[0].message
        assert (decision.frozen.kind, decision.frozen.tier) == ("ServiceOwnership", RiskTier.CRITICAL)

    def test_break_glass_on_the_ownership_lets_it_through_and_is_recorded(self):
        decision = self.judge(so(tier="critical"), so(tier="medium"), new_annotations={"ballast.dev/emergency": "X"})
        assert decision.allowed and decision.break_glass.reason == "X"
        stale = self.judge(so(tier="critical"), so(tier="medium"), old_annotations={"ballast.dev/emergency": "X"},
                           new_annotations={"ballast.dev/emergency": "X"})
        assert not stale.allowed

    def test_unselecting_workloads_is_a_finding_that_names_them(self):
        decision = self.judge(so(tier="low"), so(tier="low", selector={"app": "nothing"}), now=NOW)
        assert decision.allowed
        (finding,) = decision.findings
        assert finding.rule is Rule.TIER_DOWNGRADE and "stops selecting Deployment checkout" in finding.message

    def test_raising_the_tier_is_no_finding(self):
        assert self.judge(so(tier="low"), so(tier="critical")).findings == []


class TestBreakGlassIsRecordedEverywhere:
    def test_a_fresh_emergency_without_a_freeze_is_recorded(self):
        new = workload({**ANNOTATIONS, "ballast.dev/emergency": "INC-7"}, image="app:2")
        decision = evaluate(update(workload(), new), context())
        assert decision.break_glass == BreakGlass(None, "INC-7", "alice")

    def test_a_stale_emergency_is_not(self):
        annotations = {**ANNOTATIONS, "ballast.dev/emergency": "INC-7"}
        assert evaluate(update(workload(annotations), workload(annotations, image="app:2")), context()
                        ).break_glass is None


def release(tier="critical", author="bob", annotations=None, labels=None, owner_uid="d-1"):
    return {
        "metadata": {"name": "checkout-abc", "namespace": "shop", "annotations": annotations or {},
                     "labels": {"app.kubernetes.io/managed-by": "ballast"} if labels is None else labels,
                     "ownerReferences": [{"kind": "Deployment", "name": "checkout", "uid": owner_uid}]},
        "spec": {"deployment": "checkout", "toRevision": "abc", "tier": tier, "changedBy": {"username": author}},
    }


def release_update(old, new, username="alice"):
    return judge_release_request(ReleaseRequest("UPDATE", "shop", "checkout-abc", old, new, username),
                                 ReleasePolicySpec())


class TestReleaseRequests:
    def test_people_cannot_create_releases(self):
        refusal = judge_release_request(ReleaseRequest("CREATE", "shop", "checkout-abc", None, release(), "alice"),
                                        ReleasePolicySpec())
        assert refusal == ("Release shop/checkout-abc cannot be created by alice: Releases are recorded by Ballast's "
                           "operator, one per change of a governed Deployment's pod template: change the Deployment "
                           "instead.")

    def test_rewriting_the_author_is_refused(self):
        refusal = release_update(release(author="alice"), release(author="mallory"))
        assert refusal.startswith("Release shop/checkout-abc's spec can only be written by Ballast's operator")

    @pytest.mark.parametrize("field", ["labels", "ownerReferences"])
    def test_rewriting_what_marks_the_operators_release_is_refused(self, field):
        new = release()
        new["metadata"][field] = {} if field == "labels" else []
        assert "can only be written by Ballast's operator" in release_update(release(), new)

    def test_the_author_is_read_from_the_stored_release(self):
        refusal = release_update(release(author="alice"), release(author="alice", annotations={
            "ballast.dev/approve": "yes"}))
        assert "was changed by alice, who cannot also approve it (four eyes)" in refusal
        assert release_update(release(author="bob"), release(author="bob", annotations={"ballast.dev/approve": "1"})
                              ) is None

    def test_no_skipping_under_the_stored_tier(self):
        refusal = release_update(release(), release(annotations={"ballast.dev/promote": "1"}))
        assert "is critical tier, whose policy does not allow skipping steps" in refusal
        assert release_update(release("low"), release("low", annotations={"ballast.dev/promote": "1"})) is None

    @given(spec_key=st.sampled_from(["tier", "changedBy", "toRevision", "deployment", "emergency"]),
           value=st.text(max_size=8), username=st.text(min_size=1, max_size=8))
    def test_any_spec_change_by_a_person_is_refused(self, spec_key, value, username):
        old = release()
        new = copy.deepcopy(old)
        new["spec"][spec_key] = value
        if new["spec"] != old["spec"]:
            assert "Release shop/checkout-abc's spec" in release_update(old, new, username)

    @given(added=st.sets(st.sampled_from(["ballast.dev/approve", "ballast.dev/promote", "ballast.dev/abort"])),
           author=st.sampled_from(["alice", "bob"]), tier=st.sampled_from(list(RiskTier)),
           forged_tier=st.sampled_from(list(RiskTier)), forged_author=st.sampled_from(["alice", "bob", "carol"]))
    def test_steering_is_judged_on_the_stored_release_and_a_rewrite_never_helps(
            self, added, author, tier, forged_tier, forged_author):
        old = release(tier=tier.value, author=author)
        steering = {key: "1" for key in added}
        refusal = release_update(old, release(tier=tier.value, author=author, annotations=steering))
        self_approval = "ballast.dev/approve" in added and author == "alice"
        forbidden_skip = "ballast.dev/promote" in added and not ReleasePolicySpec().tiers.for_tier(tier).allow_skip
        assert (refusal is not None) == (self_approval or forbidden_skip)
        forged = release(tier=forged_tier.value, author=forged_author, annotations=steering)
        if forged["spec"] != old["spec"]:
            assert "spec can only be written by Ballast's operator" in release_update(old, forged)

    def test_people_cannot_write_the_status(self):
        forged = release()
        forged["status"] = {"phase": "Progressing", "currentStep": 3}
        refusal = judge_release_request(ReleaseRequest("UPDATE", "shop", "checkout-abc", release(), forged, "alice",
                                                       "status"), ReleasePolicySpec())
        assert refusal.startswith("Release shop/checkout-abc's status is Ballast's record of what it decided")

    def test_created_by_operator(self):
        deployment = {"metadata": {"uid": "d-1"}}
        assert created_by_operator(release(), deployment)
        assert not created_by_operator(release(labels={}), deployment)
        assert not created_by_operator(release(owner_uid="someone-else"), deployment)
        assert created_by_operator(release(), None)  # the Deployment is gone: the label alone decides
