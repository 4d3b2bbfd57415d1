"""Condition bookkeeping and the ServiceOwnership assessment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ballast.api.common import Condition, ConditionStatus
from ballast.api.conditions import Observation, merge_conditions
from ballast.api.releasepolicy import RequiredAnnotations
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.policy.ownership import assess_ownership
from ballast.policy.workloads import WorkloadSummary, annotation_problems, parse_alerts

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
KEYS = RequiredAnnotations()
GOOD = {"ballast.dev/owner": "payments", "ballast.dev/alerts": "CheckoutErrors, CheckoutLatency",
        "ballast.dev/runbook": "https://runbooks.example.com/checkout"}


class TestMergeConditions:
    def test_new_condition_is_a_change(self):
        merged, changed = merge_conditions([], [Observation("Ready", True, "Ready", "ok")], T0, 3)
        assert [c.type for c in changed] == ["Ready"]
        assert merged[0].last_transition_time == T0
        assert merged[0].observed_generation == 3

    def test_same_status_keeps_transition_time_and_is_no_change(self):
        first, _ = merge_conditions([], [Observation("Ready", True, "Ready", "ok")], T0, 1)
        second, changed = merge_conditions(first, [Observation("Ready", True, "Ready", "ok")], T1, 2)
        assert changed == []
        assert second[0].last_transition_time == T0
        assert second[0].observed_generation == 2

    def test_new_message_same_status_is_a_change_without_transition(self):
        first, _ = merge_conditions([], [Observation("Ready", True, "Ready", "1 workload")], T0, 1)
        second, changed = merge_conditions(first, [Observation("Ready", True, "Ready", "2 workloads")], T1, 1)
        assert [c.message for c in changed] == ["2 workloads"]
        assert second[0].last_transition_time == T0

    def test_flip_moves_transition_time(self):
        first, _ = merge_conditions([], [Observation("Ready", True, "Ready", "ok")], T0, 1)
        second, changed = merge_conditions(first, [Observation("Ready", False, "NoWorkloads", "none")], T1, 1)
        assert changed[0].status is ConditionStatus.FALSE
        assert second[0].last_transition_time == T1

    def test_unobserved_conditions_are_kept(self):
        other = Condition(type="Other", status="True", reason="X", message="", last_transition_time=T0)
        merged, _ = merge_conditions([other], [Observation("Ready", True, "Ready", "ok")], T1, 1)
        assert [c.type for c in merged] == ["Other", "Ready"]


class TestAnnotationProblems:
    def test_complete(self):
        assert annotation_problems(GOOD, KEYS) == []

    def test_everything_missing_names_each_key_and_fix(self):
        problems = annotation_problems({}, KEYS)
        assert [p.key for p in problems] == ["ballast.dev/owner", "ballast.dev/alerts", "ballast.dev/runbook"]
        assert problems[2].sentence("Deployment shop/checkout") == (
            "Deployment shop/checkout is missing annotation ballast.dev/runbook: "
            "add an http(s) URL of the service's runbook")

    def test_malformed_values(self):
        bad = {"ballast.dev/owner": "Payments Team", "ballast.dev/alerts": " , ", "ballast.dev/runbook": "wiki/page"}
        problems = [p.problem for p in annotation_problems(bad, KEYS)]
        assert "not a team name" in problems[0]
        assert "empty annotation" in problems[1]
        assert "not a URL" in problems[2]

    def test_owner_contradiction(self):
        (problem,) = annotation_problems(GOOD, KEYS, expected_owner="search")
        assert problem.problem == "has annotation ballast.dev/owner='payments' but its ServiceOwnership says 'search'"
        assert problem.fix.startswith("set ballast.dev/owner: search")

    def test_custom_keys(self):
        keys = RequiredAnnotations(owner="example.com/team", alerts="example.com/alerts", runbook="example.com/rb")
        assert annotation_problems(GOOD, keys)[0].problem == "is missing annotation example.com/team"

    def test_parse_alerts(self):
        assert parse_alerts(" A, B ,,C ") == ["A", "B", "C"]


def spec(**overrides) -> ServiceOwnershipSpec:
    fields = {"selector": {"matchLabels": {"app": "checkout"}}, "owner": "payments",
              "runbook": "https://runbooks.example.com/checkout", "alerts": ["CheckoutErrors"]}
    fields.update(overrides)
    return ServiceOwnershipSpec.model_validate(fields)


def workload(name, labels, annotations=GOOD) -> WorkloadSummary:
    return WorkloadSummary("shop", name, labels, annotations)


class TestAssessOwnership:
    def test_ready_when_workloads_match_and_carry_ownership(self):
        result = assess_ownership(spec(), [workload("checkout", {"app": "checkout"}),
                                           workload("cart", {"app": "cart"})], KEYS)
        assert result.workloads == ["checkout"]
        ready, complete = result.conditions
        assert (ready.status, complete.status) == (True, True)

    def test_no_workloads(self):
        ready, _ = assess_ownership(spec(), [workload("cart", {"app": "cart"})], KEYS).conditions
        assert (ready.status, ready.reason) == (False, "NoWorkloads")

    def test_incomplete_lists_what_is_missing(self):
        result = assess_ownership(spec(alerts=[]), [workload("checkout", {"app": "checkout"}, {})], KEYS)
        ready, complete = result.conditions
        assert ready.reason == "OwnershipIncomplete"
        assert complete.status is False
        assert "spec.alerts is empty" in complete.message
        assert "Deployment checkout is missing annotation ballast.dev/runbook: add an http(s) URL" in complete.message


class TestMergePatch:
    def test_cleared_field_becomes_null_and_absent_null_is_no_change(self):
        from ballast.api.release import ReleaseStatus
        from ballast.kube.client import merge_patch

        before = ReleaseStatus(step=0, canary_ready_at=T0).to_wire_clearing()
        after = ReleaseStatus(step=1).to_wire_clearing()
        patch = merge_patch(before, after)
        assert patch["canaryReadyAt"] is None and patch["step"] == 1
        assert "approvedBy" not in patch
        assert merge_patch(after, after) == {}
