"""Which policy governs which namespace, overlaps, and the conditions a policy reports."""

from __future__ import annotations

from ballast.api.common import LabelSelector
from ballast.policy.governance import PolicySelector, policy_conditions, resolve_governance

NAMESPACES = {
    "shop": {"team": "payments", "env": "prod"},
    "search": {"team": "search", "env": "prod"},
    "sandbox": {"env": "dev"},
    "kube-system": {"env": "prod"},
    "ballast-system": {"env": "prod"},
}


def selector(name, exempt=(), **labels) -> PolicySelector:
    return PolicySelector(name, LabelSelector(match_labels=labels), frozenset(exempt))


def test_single_policy_governs_matching_namespaces_but_never_system_ones():
    result = resolve_governance([selector("prod", env="prod")], NAMESPACES, always_exempt=["ballast-system"])
    assert result.governed == {"prod": ["search", "shop"]}
    assert result.policy_of == {"search": "prod", "shop": "prod"}
    assert result.overlaps == {"prod": []}


def test_exempt_namespaces_are_skipped():
    result = resolve_governance([selector("prod", exempt=["search"], env="prod")], NAMESPACES)
    assert result.governed["prod"] == ["ballast-system", "shop"]


def test_most_specific_selector_wins_and_both_are_told():
    broad, narrow = selector("a-prod", env="prod"), selector("z-payments", env="prod", team="payments")
    result = resolve_governance([broad, narrow], NAMESPACES, always_exempt=["ballast-system"])
    assert result.policy_of["shop"] == "z-payments"
    assert result.policy_of["search"] == "a-prod"
    assert [(o.namespace, o.other_policy, o.winner) for o in result.overlaps["a-prod"]] == [
        ("shop", "z-payments", "z-payments")
    ]
    assert [(o.namespace, o.winner) for o in result.overlaps["z-payments"]] == [("shop", "z-payments")]


def test_equal_specificity_first_name_wins():
    policies = [selector("beta", env="prod"), selector("alpha", env="prod")]
    result = resolve_governance(policies, {"shop": {"env": "prod"}})
    assert result.policy_of == {"shop": "alpha"}
    assert result.governed == {"alpha": ["shop"], "beta": []}


def test_conditions_of_a_healthy_policy():
    result = resolve_governance([selector("prod", env="prod")], {"shop": {"env": "prod"}})
    conditions = {c.type: c for c in policy_conditions("prod", result)}
    assert conditions["Ready"].status is True
    assert conditions["Valid"].status is True
    assert conditions["NamespacesMatched"].status is True
    assert conditions["Overlapping"].status is False


def test_selector_matching_nothing_is_flagged_with_the_fix():
    result = resolve_governance([selector("ghost", env="nowhere")], NAMESPACES)
    conditions = {c.type: c for c in policy_conditions("ghost", result)}
    assert conditions["Ready"].status is False
    assert conditions["NamespacesMatched"].reason == "SelectorMatchesNothing"
    assert "label the namespaces" in conditions["NamespacesMatched"].message


def test_overlap_message_names_the_other_policy_and_the_winner():
    result = resolve_governance([selector("broad", env="prod"), selector("narrow", env="prod", team="payments")],
                                {"shop": {"env": "prod", "team": "payments"}})
    overlapping = {c.type: c for c in policy_conditions("broad", result)}["Overlapping"]
    assert overlapping.status is True
    assert "namespace shop is also selected by ReleasePolicy narrow, narrow wins" in overlapping.message


def test_invalid_policy_is_not_ready():
    result = resolve_governance([selector("prod", env="prod")], {"shop": {"env": "prod"}})
    conditions = {c.type: c for c in policy_conditions("prod", result, invalid="spec.tiers.low.steps: bad")}
    assert conditions["Ready"].reason == "InvalidSpec"
    assert "spec.tiers.low.steps: bad" in conditions["Valid"].message
