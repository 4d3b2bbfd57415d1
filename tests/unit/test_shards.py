"""Shards: the selector syntax, webhook selectors narrowed to a shard, and how a policy's status judges
whether the shards pick each governed namespace exactly once."""

from __future__ import annotations

import kubernetes
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ballast.api.common import LabelSelector
from ballast.api.shards import SelectorError, parse_selector, shard, within_shard
from ballast.policy.shards import (
    Claim,
    claims_of,
    coverage,
    shard_entries,
    sharded_condition,
    summed_violations,
)
from ballast.webhooks.configurations import configuration_name, desired_configurations
from ballast.webhooks.server import Endpoint

SHARD_KEY = "ballast.dev/shard"


@pytest.mark.parametrize(("text", "labels", "picked"), [
    ("", {}, True),
    ("", {"a": "b"}, True),
    (f"!{SHARD_KEY}", {}, True),
    (f"!{SHARD_KEY}", {SHARD_KEY: "b"}, False),
    (f"{SHARD_KEY}=b", {SHARD_KEY: "b"}, True),
    (f"{SHARD_KEY}==b", {SHARD_KEY: "b"}, True),
    (f"{SHARD_KEY}=b", {SHARD_KEY: "c"}, False),
    (f"{SHARD_KEY}=b", {}, False),
    (f"{SHARD_KEY}!=b", {}, True),  # as in Kubernetes: != also picks objects without the label
    (f"{SHARD_KEY}!=b", {SHARD_KEY: "b"}, False),
    (f"{SHARD_KEY} in (b, c)", {SHARD_KEY: "c"}, True),
    (f"{SHARD_KEY} in (b,c)", {SHARD_KEY: "d"}, False),
    (f"{SHARD_KEY} notin (b,c)", {SHARD_KEY: "d"}, True),
    (f"{SHARD_KEY} notin (b,c)", {}, True),
    ("team", {"team": ""}, True),
    ("team", {}, False),
    ("team=pay, env in (prod,stage), !legacy", {"team": "pay", "env": "prod"}, True),
    ("team=pay, env in (prod,stage), !legacy", {"team": "pay", "env": "prod", "legacy": "1"}, False),
    ("  team = pay ,env notin(dev)  ", {"team": "pay", "env": "prod"}, True),
    ("team=", {"team": ""}, True),
])
def test_selectors_read_as_kubectl_reads_them(text, labels, picked):
    assert parse_selector(text).matches(labels) is picked


@pytest.mark.parametrize("text", [
    "team in (a", "team in a)", "=a", "team=a=b", "team in ()", "team in (a,)", "team ~ a", "!", "a b",
    "team in ((a))", "-team=a", "team=-a",
])
def test_a_selector_that_cannot_be_read_is_refused_with_the_part_named(text):
    with pytest.raises(SelectorError):
        parse_selector(text)


def test_a_shard_name_must_fit_in_a_webhook_configuration_name():
    assert shard("b", "x=y").name == "b"
    for bad in ("", "B", "-b", "b_c", "x" * 33):
        with pytest.raises(SelectorError, match="DNS label"):
            shard(bad, "")


KEYS = st.sampled_from(["team", "env", SHARD_KEY])
VALUES = st.sampled_from(["a", "b", "c"])


@st.composite
def requirements(draw) -> tuple[str, object]:
    """One requirement as text, with the predicate it must mean."""
    key, value, values = draw(KEYS), draw(VALUES), draw(st.lists(VALUES, min_size=1, max_size=3))
    listed = ",".join(values)
    return draw(st.sampled_from([
        (f"{key}={value}", lambda labels: labels.get(key) == value),
        (f"{key}!={value}", lambda labels: labels.get(key) != value),
        (f"{key} in ({listed})", lambda labels: labels.get(key) in values),
        (f"{key} notin ({listed})", lambda labels: labels.get(key) not in values),
        (key, lambda labels: key in labels),
        (f"!{key}", lambda labels: key not in labels),
    ]))


@given(st.lists(requirements(), min_size=1, max_size=4), st.dictionaries(KEYS, VALUES))
def test_a_selector_picks_what_all_its_requirements_pick(parts, labels):
    text = ", ".join(part for part, _ in parts)
    assert parse_selector(text).matches(labels) is all(means(labels) for _, means in parts)


@given(st.lists(requirements(), max_size=3), st.lists(requirements(), max_size=3), st.dictionaries(KEYS, VALUES))
def test_a_webhook_narrowed_to_a_shard_picks_what_both_pick(policy_parts, shard_parts, labels):
    policy = parse_selector(", ".join(part for part, _ in policy_parts))
    mine = shard("s", ", ".join(part for part, _ in shard_parts))
    narrowed = LabelSelector.model_validate(within_shard(policy.to_wire(), mine))
    assert narrowed.matches(labels) is (policy.matches(labels) and mine.governs(labels))


ENDPOINT = Endpoint(ca_bundle="Y2E=", base_url="https://ballast.example:9443")


def test_each_shard_has_its_own_configurations_and_gets_only_its_namespaces():
    from ballast.api.releasepolicy import ReleasePolicySpec

    spec = ReleasePolicySpec.model_validate({"namespaceSelector": {"matchLabels": {"team": "pay"}}})
    b = shard("b", f"{SHARD_KEY}=b")
    validating, mutating = desired_configurations([("pay", spec)], ENDPOINT, ["ballast-system"], shard=b)
    assert validating["metadata"]["name"] == mutating["metadata"]["name"] == configuration_name(b) == "b.ballast.dev"
    assert configuration_name(None) == "ballast.dev"
    for webhook in validating["webhooks"] + mutating["webhooks"]:
        selector = LabelSelector.model_validate(webhook["namespaceSelector"])
        assert selector.matches({SHARD_KEY: "b", "team": "pay"}) or webhook["name"].startswith(
            ("objects.", "releases.", "approvals."))
        assert not selector.matches({"team": "pay"}), webhook["name"]  # another shard's namespace
    unsharded, _ = desired_configurations([("pay", spec)], ENDPOINT, ["ballast-system"])
    assert "namespaceSelector" not in unsharded["webhooks"][0]  # as before sharding: ServiceOwnerships everywhere


DEFAULT = Claim("main", f"!{SHARD_KEY}", "ops/ballast-main")
B = Claim("b", f"{SHARD_KEY}=b", "ops/ballast-b")
LABELS = {"a1": {}, "a2": {"team": "x"}, "b1": {SHARD_KEY: "b"}, "b2": {SHARD_KEY: "b"}, "c1": {SHARD_KEY: "c"}}


def test_two_disjoint_shards_that_cover_everything_partition_the_namespaces():
    found = coverage(["a1", "a2", "b1", "b2"], LABELS, [DEFAULT, B])
    assert (found.counts, found.without_shard, found.in_several) == ({"main": 2, "b": 2}, [], {})
    condition = sharded_condition("pay", [DEFAULT, B], found)
    assert (condition.type, condition.status, condition.reason) == ("Sharded", True, "ShardsPartitionNamespaces")
    assert "Each of the 4 governed namespace(s)" in condition.message and "b 2, main 2" in condition.message


def test_a_namespace_no_shard_picks_is_named_with_the_fix():
    found = coverage(["a1", "b1", "c1"], LABELS, [DEFAULT, B])
    assert found.without_shard == ["c1"]
    condition = sharded_condition("pay", [DEFAULT, B], found)
    assert (condition.status, condition.reason) == (False, "NamespacesWithoutShard")
    assert "ReleasePolicy pay: namespaces c1 match no running shard's selector" in condition.message
    assert "label them for a shard, or run a shard whose selector picks them" in condition.message
    assert f"main: '!{SHARD_KEY}'" in condition.message


def test_a_namespace_two_shards_pick_is_named_before_any_gap():
    everything = Claim("all", "", "ops/ballast-all")
    found = coverage(["a1", "b1", "c1"], LABELS, [DEFAULT, B, everything])
    assert found.in_several == {"a1": ["main", "all"], "b1": ["b", "all"]}
    assert found.without_shard == []
    condition = sharded_condition("pay", [DEFAULT, B, everything], found)
    assert (condition.status, condition.reason) == (False, "NamespacesInSeveralShards")
    assert "namespace a1 is picked by shards main and all" in condition.message
    assert "make the shards' selectors disjoint" in condition.message


def test_many_namespaces_without_a_shard_are_counted_past_ten():
    labels = {f"n{i:02}": {SHARD_KEY: "z"} for i in range(25)}
    condition = sharded_condition("pay", [B], coverage(labels, labels, [B]))
    assert "n09 (and 15 more)" in condition.message and "n10" not in condition.message


def test_a_claim_with_an_unreadable_selector_picks_nothing():
    found = coverage(["a1"], LABELS, [Claim("odd", "team in (", "ops/x")])
    assert found.without_shard == ["a1"]


def entry(name: str, count: int = 0, violations: list[dict] | None = None) -> dict:
    return {"name": name, "selector": "", "lease": f"ops/{name}", "governedNamespaceCount": count,
            "violationCount": len(violations or []), "violations": violations or []}


def violation(namespace: str, name: str) -> dict:
    return {"kind": "Deployment", "namespace": namespace, "name": name, "rule": "owner", "message": "m"}


def test_a_shard_replaces_its_own_entry_keeps_the_others_and_drops_the_lapsed():
    previous = [entry("main", 1), entry("b", 1), entry("gone", 4), {"selector": "no name"}]
    entries = shard_entries(entry("b", 3), previous, lapsed={"gone"})
    assert [(e["name"], e["governedNamespaceCount"]) for e in entries] == [("b", 3), ("main", 1)]
    assert [c.name for c in claims_of([*entries, {"selector": "x"}, "junk"])] == ["b", "main"]


def test_violations_are_summed_over_every_shard_in_namespace_order():
    entries = [entry("b", violations=[violation("b1", "x")]), entry("main", violations=[violation("a1", "y")])]
    entries[0]["violationCount"] = 120  # counted in full though only the first are listed
    count, listed = summed_violations(entries)
    assert count == 121
    assert [(v["namespace"], v["name"]) for v in listed] == [("a1", "y"), ("b1", "x")]


def test_a_shard_lapses_when_its_lease_is_gone_or_unrenewed_for_five_minutes_by_the_readers_clock(monkeypatch):
    import asyncio
    from types import SimpleNamespace

    from ballast.controllers import policies
    from ballast.kube.leadership import LeaseRecord
    from ballast.policy.shards import STALE_SHARD_SECONDS

    leases: dict[str, LeaseRecord | None] = {"ops/b": LeaseRecord("b-0", 15, "2026-12-05T10:00:00Z", 0)}
    clock = [1000.0]
    monkeypatch.setattr(policies, "read_lease", lambda where: leases.get(where))
    monkeypatch.setattr(policies.time, "monotonic", lambda: clock[0])
    runtime = SimpleNamespace(lease_sightings={})

    def lapsed(where: str = "ops/b") -> bool:
        return asyncio.run(policies.lease_lapsed(runtime, where))

    assert not lapsed()
    clock[0] += STALE_SHARD_SECONDS - 1
    assert not lapsed()  # unchanged, but not for long enough
    leases["ops/b"] = LeaseRecord("b-0", 15, "2026-12-05T10:04:59Z", 0)  # renewed: its clock is never compared
    clock[0] += 2
    assert not lapsed()
    clock[0] += STALE_SHARD_SECONDS
    assert lapsed()  # a released or abandoned Lease stops changing
    leases["ops/b"] = None
    assert lapsed() and "ops/b" not in runtime.lease_sightings
    assert lapsed("not-a-lease-reference")

    def forbidden(where: str) -> None:
        raise kubernetes.client.ApiException(status=403, reason="Forbidden")

    monkeypatch.setattr(policies, "read_lease", forbidden)
    assert not lapsed()  # unreadable is not stopped: a running shard is never dropped by mistake
