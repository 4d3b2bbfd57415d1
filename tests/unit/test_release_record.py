"""The Release record of a change, and the one rule for a workload's service, team and tier behind it."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ballast.api.common import RiskTier
from ballast.api.release import FINAL_PHASES, ReleasePhase, ReleaseSpec
from ballast.api.releasepolicy import ReleasePolicySpec, RequiredAnnotations
from ballast.api.revisions import template_hash
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.api.vocabulary import ChangeType
from ballast.policy.ownership import NamedOwnership, judged_tier, responsibility
from ballast.release.record import (
    Change,
    free_release_name,
    name_for_new_release,
    release_body,
    release_name,
    release_spec,
)

KEYS = RequiredAnnotations()
TEMPLATE = {"metadata": {"labels": {"app": "checkout"}}, "spec": {"containers": [{"name": "app", "image": "app:2"}]}}
STABLE = {"metadata": {"labels": {"app": "checkout"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}


def so(name: str, tier: str = "medium", owner: str = "payments", selector: dict | None = None) -> NamedOwnership:
    return NamedOwnership(name, ServiceOwnershipSpec.model_validate({
        "selector": {"matchLabels": selector or {"app": "checkout"}}, "owner": owner, "riskTier": tier,
        "runbook": "https://runbooks.example.com/checkout"}))


def deployment(annotations: dict[str, str] | None = None) -> dict:
    return {"metadata": {"name": "checkout", "namespace": "shop", "uid": "uid-1", "labels": {"app": "checkout"},
                         "annotations": annotations or {}},
            "spec": {"template": TEMPLATE}}


def change(annotations: dict[str, str] | None = None, tier: RiskTier = RiskTier.MEDIUM, service: str = "checkout",
           stable: dict | None = STABLE) -> Change:
    return Change(deployment(annotations), stable, "default", ReleasePolicySpec(), service=service,
                  team="payments", tier=tier)


class TestResponsibility:
    def test_one_ownership_names_service_team_and_tier(self):
        who = responsibility({"app": "checkout"}, {"ballast.dev/owner": "other"}, [so("checkout", "high")], KEYS)
        assert (who.service, who.team, who.tier) == ("checkout", "payments", RiskTier.HIGH)

    def test_no_ownership_falls_back_to_the_owner_annotation_and_the_default_tier(self):
        who = responsibility({"app": "checkout"}, {"ballast.dev/owner": "web"}, [], KEYS)
        assert (who.service, who.team, who.tier) == ("", "web", RiskTier.MEDIUM)

    def test_several_ownerships_name_no_service_and_take_the_strictest_tier(self):
        owners = [so("a", "low"), so("b", "critical")]
        who = responsibility({"app": "checkout"}, {"ballast.dev/owner": "web"}, owners, KEYS)
        assert (who.service, who.team, who.tier) == ("", "web", RiskTier.CRITICAL)
        assert {o.name for o in who.selected_by} == {"a", "b"}

    def test_several_low_ownerships_keep_their_low_tier(self):
        # The rule admission always enforced; the release engine used the default tier here before.
        assert responsibility({"app": "checkout"}, {}, [so("a", "low"), so("b", "low")], KEYS).tier is RiskTier.LOW

    def test_a_policy_may_rename_the_owner_annotation(self):
        keys = RequiredAnnotations(owner="example.com/team")
        assert responsibility({}, {"example.com/team": "web", "ballast.dev/owner": "x"}, [], keys).team == "web"

    @given(st.lists(st.sampled_from(list(RiskTier)), max_size=4), st.booleans())
    def test_the_release_runs_at_least_at_the_tier_admission_judged(self, tiers, relabelled):
        owners = [so(f"s{i}", t.value) for i, t in enumerate(tiers)]
        before = {"metadata": {"labels": {"app": "checkout"}}}
        after = {"metadata": {"labels": {"app": "other"} if relabelled else {"app": "checkout"}}}
        judged = judged_tier(before, after, owners)
        who = responsibility(after["metadata"]["labels"], {}, owners, KEYS)
        spec = release_spec(change({"ballast.dev/pending-tier": judged.value}, tier=who.tier))
        assert spec.tier is judged


class TestReleaseRecord:
    def test_the_spec_records_the_change(self):
        author = {"username": "alice", "groups": ["dev"]}
        spec = release_spec(change({"ballast.dev/changed-by": json.dumps(author), "ballast.dev/change-type": "fix",
                                    "ballast.dev/pending-emergency": "INC-1"}, tier=RiskTier.HIGH))
        assert spec == ReleaseSpec(
            deployment="checkout", service="checkout", owner="payments", tier=RiskTier.HIGH, policy="default",
            from_revision=template_hash(STABLE), to_revision=template_hash(TEMPLATE), from_images=["app:1"],
            to_images=["app:2"], changed_by={"username": "alice", "groups": ["dev"]}, change_type=ChangeType.FIX,
            emergency="INC-1", steps=ReleasePolicySpec().tiers.for_tier(RiskTier.HIGH).steps)

    def test_a_first_release_has_no_from_revision(self):
        spec = release_spec(change(stable=None))
        assert (spec.from_revision, spec.from_images) == ("", [])

    def test_unreadable_bookkeeping_is_ignored(self):
        spec = release_spec(change({"ballast.dev/changed-by": "{not json", "ballast.dev/change-type": "party",
                                    "ballast.dev/pending-tier": "extreme"}, tier=RiskTier.LOW))
        assert (spec.changed_by, spec.change_type, spec.tier) == (None, ChangeType.FEATURE, RiskTier.LOW)

    def test_the_tier_judged_at_admission_is_never_lowered(self):
        assert release_spec(change({"ballast.dev/pending-tier": "critical"}, tier=RiskTier.LOW)).tier is \
            RiskTier.CRITICAL
        assert release_spec(change({"ballast.dev/pending-tier": "low"}, tier=RiskTier.HIGH)).tier is RiskTier.HIGH

    def test_the_body_is_the_operators_and_owned_by_the_deployment(self):
        body = release_body(change(service=""), "checkout-abc")
        assert body["metadata"]["labels"] == {"ballast.dev/deployment": "checkout", "ballast.dev/service": "checkout",
                                              "app.kubernetes.io/managed-by": "ballast"}
        assert body["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                        "name": "checkout", "uid": "uid-1",
                                                        "blockOwnerDeletion": False}]
        assert (body["metadata"]["name"], body["metadata"]["namespace"]) == ("checkout-abc", "shop")

    def test_names_skip_squatted_ones(self):
        assert release_name("web", "0123456789abcdef", 1) == "web-0123456789"
        assert release_name("web", "0123456789abcdef", 2) == "web-0123456789-2"
        taken = {"web-0123456789", "web-0123456789-2"}
        assert free_release_name("web", "0123456789abcdef", 1, taken) == "web-0123456789-3"
        assert free_release_name("web", "0123456789abcdef", 4, taken) == "web-0123456789-4"


def open_release(name: str, phase: str | None = None, revision: str | None = None, **changes: object) -> dict:
    """A Release of checkout's change as the operator creates it, in ``phase`` (None: no status yet)."""
    body = release_body(change(), name)
    body["spec"]["toRevision"] = revision or template_hash(TEMPLATE)
    body["status"] = {"phase": phase} if phase else {}
    body.update(changes)
    return body


class TestNameForNewRelease:
    """One change, one Release: the name comes from one snapshot of the namespace's Releases."""

    revision = template_hash(TEMPLATE)
    first = release_name("checkout", template_hash(TEMPLATE), 1)

    def test_the_first_release_of_a_change_gets_the_plain_name(self):
        assert name_for_new_release(deployment(), self.revision, []) == self.first

    @given(st.sampled_from([None, *(p.value for p in ReleasePhase if p not in FINAL_PHASES)]))
    def test_no_second_release_while_the_first_is_open(self, phase):
        assert name_for_new_release(deployment(), self.revision, [open_release(self.first, phase)]) is None

    @given(st.sampled_from([p.value for p in FINAL_PHASES]))
    def test_a_change_made_again_after_its_release_ended_is_a_new_attempt(self, phase):
        assert name_for_new_release(deployment(), self.revision,
                                    [open_release(self.first, phase)]) == f"{self.first}-2"

    def test_releases_of_other_deployments_and_revisions_do_not_hold_a_change(self):
        other_revision = open_release(release_name("checkout", "f" * 16, 1), "Progressing", revision="f" * 16)
        other_deployment = open_release("cart-0123456789", "Progressing")
        other_deployment["spec"]["deployment"] = "cart"
        releases = [other_revision, other_deployment]
        assert name_for_new_release(deployment(), self.revision, releases) == self.first

    def test_a_release_not_made_by_the_operator_neither_holds_nor_is_adopted_but_its_name_is_skipped(self):
        squatter = open_release(self.first, "Progressing")
        squatter["metadata"]["labels"] = {}
        assert name_for_new_release(deployment(), self.revision, [squatter]) == f"{self.first}-2"

    def test_a_release_owned_by_an_earlier_deployment_of_the_same_name_does_not_hold_a_change(self):
        orphan = open_release(self.first, "AwaitingApproval")
        orphan["metadata"]["ownerReferences"][0]["uid"] = "uid-of-a-deleted-deployment"
        assert name_for_new_release(deployment(), self.revision, [orphan]) == f"{self.first}-2"
