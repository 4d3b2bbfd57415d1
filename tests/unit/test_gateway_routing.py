"""Exact weights through a Gateway API HTTPRoute: the pure decisions (release/routing.py) and the machine's
use of them (release/machine.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ballast.api.common import RiskTier
from ballast.api.release import ReleasePhase, ReleaseStatus
from ballast.api.releasepolicy import TIER_DEFAULTS, Tiers
from ballast.api.routing import GatewayRoute, GatewayRouteTemplate, RoutingMode
from ballast.api.serviceownership import ServiceOwnershipSpec
from ballast.cli.sre import route_text
from ballast.release.machine import ActionKind, CanaryView, DeploymentView, Requests, RouteView, View, plan
from ballast.release.routing import (
    MAX_WEIGHT,
    RouteChoice,
    canary_service_name,
    canary_size,
    choose_route,
    foreign_edit,
    record,
    restore_rules,
    restored,
    route_block,
    route_problem,
    shown_weights,
    stable_service_name,
    weighted_refs,
    weighted_rules,
)
from tests.unit.test_release_machine import GOOD, PAUSED, T0, TIER, progressing

SHOP = GatewayRoute(name="shop", backend="shop", port=80)
CHOICE = RouteChoice(SHOP, explicit=True)


def rules(*backends: dict, extra_rule: bool = False) -> list[dict]:
    """spec.rules as the API server stores them (defaults filled in)."""
    stored = [{"group": "", "kind": "Service", "weight": 1, **b} for b in backends]
    out = [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": stored}]
    if extra_rule:
        out.insert(0, {"matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
                       "backendRefs": [{"group": "", "kind": "Service", "name": "admin", "port": 80, "weight": 1}]})
    return out


def apply(current: list[dict], changes: dict[int, list[dict]]) -> list[dict]:
    """The route after a write of ``changes`` (rule index -> backendRefs), with the API server's defaults."""
    out = [dict(rule) for rule in current]
    for index, refs in changes.items():
        out[index] = {**out[index], "backendRefs": [{"group": "", "kind": "Service", "weight": 1, **r} for r in refs]}
    return out


LONE = rules({"name": "shop", "port": 80})
REC = record(CHOICE, LONE, "shop")


class TestWeights:
    @pytest.mark.parametrize(("weight", "expected"), [(1, (99, 1)), (5, (95, 5)), (25, (75, 25)),
                                                      (50, (50, 50)), (100, (0, 100))])
    def test_a_lone_backend_is_split_exactly(self, weight, expected):
        assert shown_weights(REC, weight) == expected

    @given(st.integers(1, 100), st.integers(1, 10_000), st.lists(st.integers(0, 10_000), max_size=5))
    def test_the_canary_gets_exactly_its_share_of_the_stable_backends_traffic(self, weight, own, others):
        refs = [{"name": "shop", "port": 80, "weight": own}, *({"name": f"o{i}", "port": 80, "weight": w}
                                                              for i, w in enumerate(others))]
        out = {r["name"]: r["weight"] for r in weighted_refs(REC, refs, weight)}
        total_before, total_after = own + sum(others), sum(out.values())
        # Exact rational equality: canary / total == (own / total_before) * weight / 100.
        assert out[REC.canary_service] * total_before * 100 == own * weight * total_after
        assert (out[REC.stable_service] + out[REC.canary_service]) * total_before == own * total_after
        for i, w in enumerate(others):  # the other backends keep their share
            assert out[f"o{i}"] * total_before == w * total_after
        assert all(0 <= w <= MAX_WEIGHT for w in out.values())
        assert "shop" not in out

    @given(st.integers(0, 10_000), st.integers(1, 100))
    def test_canary_size_carries_its_share(self, stable, weight):
        size = canary_size(stable, weight)
        assert size >= 1 and size >= stable * weight / 100
        assert size == 1 or size - 1 < stable * weight / 100

    def test_a_route_too_heavy_to_split_is_not_used(self):
        heavy = rules({"name": "shop", "port": 80, "weight": 20_000})
        assert "above 10000" in route_problem(CHOICE, heavy, "ns", "shop")

    def test_only_the_named_port_is_weighted(self):
        two_ports = rules({"name": "shop", "port": 80}, {"name": "shop", "port": 8080})
        rec = record(RouteChoice(SHOP, True), two_ports, "shop")
        names = [(r["name"], r["port"]) for r in weighted_rules(rec, 10)[0]]
        assert names == [(rec.stable_service, 80), (rec.canary_service, 80), ("shop", 8080)]

    def test_only_rules_that_send_to_the_backend_are_recorded_and_written(self):
        two = rules({"name": "shop", "port": 80}, extra_rule=True)
        rec = record(CHOICE, two, "shop")
        assert [r.rule for r in rec.original] == [1]
        assert set(weighted_rules(rec, 5)) == {1}

    def test_long_deployment_names_give_valid_service_names(self):
        name = "a" * 70
        assert len(stable_service_name(name)) <= 63 and len(canary_service_name(name)) <= 63
        assert stable_service_name(name) != canary_service_name(name) != canary_service_name("a" * 71)


class TestChoice:
    def test_the_service_ownership_wins_over_the_tier(self):
        assert choose_route(SHOP, GatewayRouteTemplate(), "svc", "dep") == CHOICE

    def test_the_tier_templates_the_route_from_the_service_and_deployment(self):
        chosen = choose_route(None, GatewayRouteTemplate(name="$service-public", backend="$deployment", port=8080),
                              "svc", "dep")
        assert chosen == RouteChoice(GatewayRoute(name="svc-public", backend="dep", port=8080), explicit=False)
        assert choose_route(None, GatewayRouteTemplate(), "", "dep").route.name == "dep"

    def test_none_means_the_replica_split(self):
        assert choose_route(None, None, "svc", "dep") is None


class TestBlock:
    def test_a_missing_route_is_a_problem(self):
        assert route_problem(CHOICE, None, "ns", "shop") == (
            "HTTPRoute ns/shop does not exist: create it, or name the right route in spec.traffic.gatewayRoute.")

    def test_a_route_without_the_backend_is_a_problem(self):
        text = route_problem(CHOICE, rules({"name": "other", "port": 80}), "ns", "shop")
        assert "has no backendRef to Service shop port 80: add it to the route" in text

    def test_a_route_an_earlier_release_still_drives_is_a_problem(self):
        held = apply(LONE, weighted_rules(REC, 5))
        assert route_problem(CHOICE, held, "ns", "shop") == (
            "HTTPRoute ns/shop still sends traffic to an earlier release of shop (Services shop-ballast-canary, "
            "shop-ballast-stable): that release hands it back when it ends; if none is running, put the route's "
            "backendRefs back to Service shop.")

    def test_a_missing_backend_service_is_a_problem(self):
        assert route_problem(CHOICE, LONE, "ns", "shop", backend_exists=False).startswith(
            "Service ns/shop, which HTTPRoute shop sends to, does not exist")

    def test_a_services_name_someone_else_holds_is_a_problem(self):
        assert route_problem(CHOICE, LONE, "ns", "shop", taken=["shop-ballast-canary"]) == (
            "Service ns/shop-ballast-canary exists and is not the release's: Ballast needs that name to route the "
            "canary's traffic. Rename or delete it.")

    def test_a_usable_route_has_no_problem(self):
        assert route_problem(CHOICE, LONE, "ns", "shop") is None

    def test_a_named_routes_problem_holds_the_release(self):
        assert route_block(CHOICE, "HTTPRoute ns/shop does not exist.", False, "low", "shop") == (
            "HTTPRoute ns/shop does not exist. The release waits until then.")
        assert route_block(CHOICE, None, True, "low", "shop") is None

    def test_a_templated_routes_problem_means_the_replica_split_unless_required(self):
        templated = RouteChoice(SHOP, explicit=False)
        assert route_block(templated, "HTTPRoute ns/shop does not exist.", False, "low", "shop") is None
        assert route_block(templated, "HTTPRoute ns/shop does not exist.", True, "low", "shop") == (
            "HTTPRoute ns/shop does not exist. The release waits until then.")

    def test_a_tier_that_requires_a_route_holds_a_service_without_one(self):
        assert route_block(None, None, False, "critical", "shop") is None
        assert route_block(None, None, True, "critical", "shop") == (
            "Tier critical requires a Gateway route, and service shop names none: set spec.traffic.gatewayRoute on "
            "its ServiceOwnership (or gatewayRoute on the tier in the ReleasePolicy). The release waits until then.")


class TestForeignEdits:
    @given(st.sampled_from([1, 5, 25, 50]))
    def test_what_ballast_wrote_is_no_foreign_edit(self, weight):
        assert foreign_edit(REC, apply(LONE, weighted_rules(REC, weight)), [1, 5, 25, 50]) is None
        assert foreign_edit(REC, LONE, [1, 5, 25, 50]) is None

    def test_changed_weights_are_noticed(self):
        edited = apply(LONE, {0: [{"name": REC.stable_service, "port": 80, "weight": 1},
                                  {"name": REC.canary_service, "port": 80, "weight": 1}]})
        assert foreign_edit(REC, edited, [5, 25]).startswith("HTTPRoute shop was changed by someone else")

    def test_a_deleted_route_is_noticed(self):
        assert foreign_edit(REC, None, [5]) == "HTTPRoute shop was deleted during the release."

    def test_edits_outside_the_backends_are_not_foreign(self):
        edited = apply(LONE, weighted_rules(REC, 5))
        edited[0]["matches"] = [{"path": {"type": "PathPrefix", "value": "/shop"}}]
        assert foreign_edit(REC, edited, [5]) is None


class TestRestore:
    @given(st.integers(0, 100))
    def test_a_route_ballast_left_comes_back_exactly(self, weight):
        current = apply(LONE, weighted_rules(REC, weight))
        assert apply(current, restore_rules(REC, current)) == LONE

    def test_an_untouched_route_needs_nothing(self):
        assert restore_rules(REC, LONE) == {} and restored(REC, LONE)
        assert restore_rules(REC, None) == {} and restored(REC, None)

    def test_a_foreign_edit_is_kept_and_only_ballasts_services_leave(self):
        edited = apply(LONE, {0: [{"name": REC.stable_service, "port": 80, "weight": 7},
                                  {"name": REC.canary_service, "port": 80, "weight": 3},
                                  {"name": "mirror", "port": 80, "weight": 2}]})
        after = apply(edited, restore_rules(REC, edited))
        assert [(r["name"], r["weight"]) for r in after[0]["backendRefs"]] == [("shop", 7), ("mirror", 2)]
        assert restored(REC, after)


# -- the machine -------------------------------------------------------------------------------------------

STEPS = TIER.steps  # [10, 50]


def gview(status: ReleaseStatus, *, rules_now=LONE, canary=None, deployment=PAUSED, choice=CHOICE, problem=None,
          **kw) -> View:
    return View(now=T0, status=status, steps=STEPS, to_revision="new-rev", from_revision="old-rev", tier=TIER,
                deployment=deployment, canary=canary, route=RouteView(
                    choice=choice, rules=rules_now, problem=problem, resource_version="7", deployment="shop"), **kw)


def routed(step=0, weight=10, ready_at=None) -> ReleaseStatus:
    status = progressing(step, weight, ready_at=ready_at)
    return status.model_copy(update={"routing": RoutingMode.GATEWAY_ROUTE, "route": REC, "reached_weight": weight})


class TestMachine:
    def test_a_release_with_a_route_records_it_and_sizes_the_canary_to_carry_its_share(self):
        result = plan(gview(ReleaseStatus()))
        status = result.status
        assert (status.routing, status.route, status.reached_weight, status.weight_warning) == (
            RoutingMode.GATEWAY_ROUTE, REC, 10, "")
        # 9 stable replicas at 10 %: one canary pod carries 10 % of the traffic.
        assert [(a.kind, a.replicas) for a in result.actions] == [(ActionKind.ENSURE_CANARY, 1)]
        assert "canary at 10% of the traffic through HTTPRoute shop (1 pod(s))" in status.message

    def test_without_a_usable_route_the_release_splits_by_replicas(self):
        result = plan(gview(ReleaseStatus(), choice=RouteChoice(SHOP, explicit=False), rules_now=None,
                            problem="HTTPRoute ns/shop does not exist."))
        assert (result.status.routing, result.status.route) == (RoutingMode.REPLICA_SPLIT, None)

    def test_the_route_moves_only_once_the_canary_is_ready(self):
        waiting = plan(gview(routed(), canary=CanaryView(1, 0)))
        assert ActionKind.ROUTE_TRAFFIC not in [a.kind for a in waiting.actions]
        ready = plan(gview(routed(), canary=CanaryView(1, 1)))
        route_actions = [a for a in ready.actions if a.kind is ActionKind.ROUTE_TRAFFIC]
        assert route_actions and route_actions[0].rules == weighted_rules(REC, 10)
        assert route_actions[0].resource_version == "7"
        assert route_actions[0].route == ready.status.route
        assert (ready.status.route.stable_weight, ready.status.route.canary_weight) == (90, 10)
        assert ready.status.canary_ready_at == T0

    def test_a_route_at_the_steps_weight_is_left_alone(self):
        at_weight = apply(LONE, weighted_rules(REC, 10))
        result = plan(gview(routed(ready_at=T0), rules_now=at_weight, canary=CanaryView(1, 1)))
        assert ActionKind.ROUTE_TRAFFIC not in [a.kind for a in result.actions]

    def test_the_next_step_scales_the_canary_before_moving_the_route(self):
        at_weight = apply(LONE, weighted_rules(REC, 10))
        status = routed(ready_at=T0)
        result = plan(View(now=T0 + timedelta(seconds=20), status=status, steps=STEPS, to_revision="new-rev",
                           from_revision="old-rev", tier=TIER, deployment=PAUSED, canary=CanaryView(1, 1),
                           analysis=GOOD, route=RouteView(rules=at_weight, resource_version="8", deployment="shop")))
        assert (result.status.step, result.status.weight, result.status.reached_weight) == (1, 50, 50)
        # 9 stable replicas at 50 %: five canary pods; the route stays at 10 % until they are ready.
        assert [(a.kind, a.replicas) for a in result.actions] == [(ActionKind.ENSURE_CANARY, 5)]

    def test_a_foreign_edit_rolls_back_and_takes_traffic_off_the_canary_first(self):
        edited = apply(LONE, {0: [{"name": REC.stable_service, "port": 80, "weight": 1},
                                  {"name": REC.canary_service, "port": 80, "weight": 1}]})
        result = plan(gview(routed(ready_at=T0), rules_now=edited, canary=CanaryView(1, 1)))
        assert (result.status.phase, result.status.reason) == (ReleasePhase.ROLLING_BACK, "RouteEdited")
        assert "HTTPRoute shop was changed by someone else" in result.status.message
        assert "Release again once HTTPRoute shop is as intended" in result.status.message
        assert [a.kind for a in result.actions] == [ActionKind.RESTORE_ROUTE, ActionKind.DELETE_CANARY,
                                                    ActionKind.RESTORE]

    @pytest.mark.parametrize("requests", ["abort", "supersede", "deleted"])
    def test_every_way_out_restores_the_route(self, requests):
        at_weight = apply(LONE, weighted_rules(REC, 10))
        kw: dict = {"rules_now": at_weight, "canary": CanaryView(1, 1)}
        if requests == "abort":
            kw["requests"] = Requests(abort="bad idea")
        elif requests == "supersede":
            kw["deployment"] = DeploymentView(revision="newer", paused=True, replicas=9, pending=True,
                                              rolled_out=False)
        else:
            kw["deployment"] = None
        result = plan(gview(routed(ready_at=T0), **kw))
        assert (result.actions[0].kind, result.actions[0].route) == (ActionKind.RESTORE_ROUTE, REC)

    def test_promotion_restores_the_route_before_rolling_out(self):
        at_weight = apply(LONE, weighted_rules(REC, 50))
        status = routed(step=1, weight=50, ready_at=T0)
        result = plan(View(now=T0 + timedelta(seconds=20), status=status, steps=STEPS, to_revision="new-rev",
                           from_revision="old-rev", tier=TIER, deployment=PAUSED, canary=CanaryView(5, 5),
                           analysis=GOOD, route=RouteView(rules=at_weight, resource_version="9", deployment="shop")))
        assert result.status.phase is ReleasePhase.PROMOTING
        assert [a.kind for a in result.actions] == [ActionKind.RESTORE_ROUTE, ActionKind.PROMOTE]

    def test_promoting_waits_for_the_route_to_be_restored(self):
        at_weight = apply(LONE, weighted_rules(REC, 50))
        status = routed(step=1, weight=50, ready_at=T0).model_copy(update={"phase": ReleasePhase.PROMOTING})
        result = plan(gview(status, rules_now=at_weight, canary=CanaryView(5, 5)))
        assert [a.kind for a in result.actions] == [ActionKind.RESTORE_ROUTE]
        done = plan(gview(status, rules_now=LONE, canary=CanaryView(5, 5)))
        assert [a.kind for a in done.actions] == [ActionKind.PROMOTE]

    def test_rolling_back_restores_a_route_left_routed_by_a_restart(self):
        at_weight = apply(LONE, weighted_rules(REC, 10))
        status = routed(ready_at=T0).model_copy(update={"phase": ReleasePhase.ROLLING_BACK})
        rolled = DeploymentView(revision="old-rev", paused=False, replicas=9, pending=False, rolled_out=True)
        result = plan(gview(status, rules_now=at_weight, deployment=rolled))
        assert [a.kind for a in result.actions] == [ActionKind.RESTORE_ROUTE]
        finished = plan(gview(status, rules_now=LONE, deployment=rolled))
        assert finished.status.phase is ReleasePhase.ROLLED_BACK

    def test_replica_split_releases_never_touch_a_route(self):
        result = plan(gview(progressing(), choice=None, rules_now=None, canary=CanaryView(1, 1)))
        assert not {ActionKind.ROUTE_TRAFFIC, ActionKind.RESTORE_ROUTE} & {a.kind for a in result.actions}


def test_math_is_exact_for_every_step_of_every_default_tier():
    for tier in TIER_DEFAULTS.values():
        for weight in tier.steps:
            stable, canary = shown_weights(REC, weight)
            assert canary * 100 == weight * (stable + canary)
    assert shown_weights(REC, 1) == (99, 1)


class TestShown:
    def test_status_shows_the_route_and_the_weights_set(self):
        assert route_text(None, None) is None
        assert route_text(REC.to_wire(), "Progressing") == "shop (untouched)"
        set_weights = REC.model_copy(update={"stable_weight": 95, "canary_weight": 5})
        assert route_text(set_weights.to_wire(), "Progressing") == "shop stable=95 canary=5"
        assert route_text(set_weights.to_wire(), "RolledBack") == "shop (restored)"


class TestModels:
    BASE = {"selector": {"matchLabels": {"app": "shop"}}, "owner": "payments",
            "runbook": "https://runbooks.example.com/shop"}

    def test_a_service_ownership_names_its_route(self):
        spec = ServiceOwnershipSpec.model_validate({**self.BASE, "traffic": {"gatewayRoute": ROUTE_WIRE}})
        assert spec.traffic.gateway_route == SHOP
        assert ServiceOwnershipSpec.model_validate(self.BASE).traffic.gateway_route is None

    @pytest.mark.parametrize("route", [{"name": "Shop_Route", "backend": "shop"}, {"name": "shop", "backend": ""},
                                       {"name": "shop", "backend": "shop", "port": 0},
                                       {"name": "shop", "backend": "shop", "port": 70000}, {"backend": "shop"}])
    def test_a_malformed_route_is_refused(self, route):
        with pytest.raises(ValidationError):
            ServiceOwnershipSpec.model_validate({**self.BASE, "traffic": {"gatewayRoute": route}})

    def test_a_tier_sets_a_templated_route_and_may_require_one(self):
        tiers = Tiers.model_validate({"critical": {"gatewayRoute": {"port": 80}, "requireGatewayRoute": True}})
        critical = tiers.for_tier(RiskTier.CRITICAL)
        assert (critical.gateway_route, critical.require_gateway_route) == (GatewayRouteTemplate(port=80), True)
        assert critical.steps == TIER_DEFAULTS[RiskTier.CRITICAL].steps  # the rest stays the tier's default
        assert tiers.for_tier(RiskTier.LOW).gateway_route is None

    def test_a_template_with_an_unknown_variable_is_refused(self):
        with pytest.raises(ValidationError, match=r"uses \$svc; a route template knows only \$service and "
                                                  r"\$deployment"):
            GatewayRouteTemplate(name="$svc-public")


ROUTE_WIRE = {"name": "shop", "backend": "shop", "port": 80}
