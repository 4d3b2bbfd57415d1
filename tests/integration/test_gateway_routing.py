"""Exact canary weights through a Gateway API HTTPRoute (issue 13, items 1 and 2), on the local control plane.

The HTTPRoute v1 CRD is the one tests/integration/test_gateway_api_crd.py pins. Every write Ballast makes to a
route is read back from the API server's watch history, so no step's weights can slip by unseen.
"""

from __future__ import annotations

import json
import threading

import kubernetes
import pytest

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.harness.gateway import install_httproute_crd
from tests.integration.kube import ballast, events_for
from tests.integration.releasing import BAD, FAST_TIER, GOOD, change, final_release, govern, release_in, releases

GATEWAY, V1, ROUTES = "gateway.networking.k8s.io", "v1", "httproutes"
ORIGINAL = [{"group": "", "kind": "Service", "name": "shop", "port": 80, "weight": 1}]
ROUTE = {"name": "shop", "backend": "shop", "port": 80}


@pytest.fixture(scope="module")
def httproutes(cluster, api_client):
    install_httproute_crd(cluster.kubeconfig)
    return kubernetes.client.CustomObjectsApi(api_client)


def shop_route(httproutes, core, namespace) -> None:
    """The stable Service 'shop' and an HTTPRoute sending all of it there."""
    core.create_namespaced_service(namespace, {"metadata": {"name": "shop"}, "spec": {
        "selector": {"app": "shop"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    created = httproutes.create_namespaced_custom_object(GATEWAY, V1, namespace, ROUTES, {
        "apiVersion": f"{GATEWAY}/{V1}", "kind": "HTTPRoute", "metadata": {"name": "shop"},
        "spec": {"parentRefs": [{"name": "edge"}], "rules": [{"backendRefs": [{"name": "shop", "port": 80}]}]}})
    assert created["spec"]["rules"][0]["backendRefs"] == ORIGINAL


def route_through(custom, namespace, route=ROUTE) -> None:
    """Name the route on the ServiceOwnership, and wait until the operator has seen it."""
    patched = custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop",
                                                    {"spec": {"traffic": {"gatewayRoute": route}}})
    generation = patched["metadata"]["generation"]
    wait_for(lambda: (custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop")
                      .get("status") or {}).get("observedGeneration") == generation, 30,
             "the operator never saw the ServiceOwnership's route")


def backend_refs(httproutes, namespace) -> list[dict]:
    return httproutes.get_namespaced_custom_object(GATEWAY, V1, namespace, ROUTES, "shop")["spec"]["rules"][0][
        "backendRefs"]


class RouteWrites:
    """Every version of the route's backend weights from now on, in order, as a watch delivers them."""

    def __init__(self, httproutes, namespace):
        self.seen: list[dict[str, int]] = []
        self._watch = kubernetes.watch.Watch()
        # A list's resourceVersion is the store's current one: the watch starts now, within the watch cache.
        since = httproutes.list_namespaced_custom_object(GATEWAY, V1, namespace, ROUTES)["metadata"]["resourceVersion"]
        threading.Thread(target=self._follow, args=(httproutes, namespace, since), daemon=True).start()

    def _follow(self, httproutes, namespace, since):
        for event in self._watch.stream(httproutes.list_namespaced_custom_object, GATEWAY, V1, namespace, ROUTES,
                                        resource_version=since, timeout_seconds=600, _request_timeout=610):
            if event["type"] == "MODIFIED":
                refs = event["object"]["spec"]["rules"][0]["backendRefs"]
                self.seen.append({r["name"]: r["weight"] for r in refs})

    def until_restored(self) -> list[dict[str, int]]:
        """The versions seen once the route is back to the stable Service alone; the watch then stops."""
        wait_for(lambda: self.seen and self.seen[-1] == {"shop": 1}, 30, f"the route was not restored: {self.seen}")
        self._watch.stop()
        return list(self.seen)


def ballast_services(core, namespace) -> list[str]:
    return sorted(s.metadata.name for s in core.list_namespaced_service(namespace).items
                  if s.metadata.name.startswith("shop-ballast-"))


def _routed(custom, apps, core, namespace, httproutes, tier):
    name = govern(custom, apps, namespace, low_tier=tier)
    shop_route(httproutes, core, namespace)
    route_through(custom, namespace)
    yield namespace
    custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


@pytest.fixture
def routed(custom, apps, core, namespace, operator, httproutes):
    """A governed namespace whose service 'shop' releases through HTTPRoute 'shop'."""
    yield from _routed(custom, apps, core, namespace, httproutes, FAST_TIER)


@pytest.fixture
def slowly_routed(custom, apps, core, namespace, operator, httproutes):
    """As ``routed``, with steps of a minute: time to act on a release mid-step."""
    yield from _routed(custom, apps, core, namespace, httproutes, {**FAST_TIER, "stepDuration": "60s"})


STEP_25 = {"shop-ballast-stable": 75, "shop-ballast-canary": 25}
STEP_50 = {"shop-ballast-stable": 50, "shop-ballast-canary": 50}


def test_promotion_sets_each_steps_exact_weights_then_restores_the_route(routed, custom, apps, core, httproutes):
    namespace = routed
    writes = RouteWrites(httproutes, namespace)
    change(apps, namespace, "app:2.0", GOOD)
    running = release_in(custom, namespace, ("Progressing",))
    selectors = wait_for(lambda: {s.metadata.name: s.spec.selector for s in core.list_namespaced_service(namespace)
                                  .items if s.metadata.name.startswith("shop-ballast-")} or None, 30,
                         "Ballast never created its Services")
    assert selectors["shop-ballast-canary"] == {"app": "shop", "ballast.dev/track": "canary"}
    assert set(selectors["shop-ballast-stable"]) == {"app", "pod-template-hash"}
    status = final_release(custom, namespace)["status"]
    assert status["phase"] == "Promoted", status
    assert status["routing"] == "GatewayRoute"
    assert status["route"]["original"] == [{"rule": 0, "backendRefs": ORIGINAL}]
    assert (status["route"]["stableWeight"], status["route"]["canaryWeight"]) == (50, 50)
    assert [(a["weight"], a["verdict"]) for a in status["analyses"] if a["verdict"] != "Inconclusive"] == [
        (25, "Pass"), (50, "Pass")]
    # Exactly the steps' weights, in order, whatever the replicas (3 stable: one canary pod would be 25%, two
    # 40%), then the route as it was.
    assert writes.until_restored() == [STEP_25, STEP_50, {"shop": 1}]
    assert backend_refs(httproutes, namespace) == ORIGINAL
    wait_for(lambda: ballast_services(core, namespace) == [], 30, "Ballast's Services outlived the release")
    assert running["metadata"]["name"] == releases(custom, namespace)[0]["metadata"]["name"]


def test_a_failing_canary_is_rolled_back_and_the_route_restored(routed, custom, apps, core, httproutes):
    namespace = routed
    writes = RouteWrites(httproutes, namespace)
    change(apps, namespace, "app:2.0", BAD)
    status = final_release(custom, namespace)["status"]
    assert (status["phase"], status["reason"]) == ("RolledBack", "AnalysisFailed"), status
    assert writes.until_restored() == [STEP_25, {"shop": 1}]
    assert backend_refs(httproutes, namespace) == ORIGINAL
    wait_for(lambda: ballast_services(core, namespace) == [], 30, "Ballast's Services outlived the release")


def canary_routed(httproutes, namespace) -> bool:
    return any(r["name"] == "shop-ballast-canary" for r in backend_refs(httproutes, namespace))


def test_the_sre_sees_the_route_and_an_abort_restores_it(slowly_routed, custom, apps, httproutes, cluster):
    namespace = slowly_routed
    change(apps, namespace, "app:2.0", GOOD)
    wait_for(lambda: canary_routed(httproutes, namespace), 60, "the route never sent traffic to the canary")
    release = release_in(custom, namespace, ("Progressing",))
    shown = ballast(cluster.kubeconfig, "status", "-n", namespace, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert [(r["weight"], r["reached"], r["routing"], r["route"]) for r in json.loads(shown.stdout)] == [
        (25, 25, "GatewayRoute", "shop stable=75 canary=25")]
    described = ballast(cluster.kubeconfig, "describe", "-n", namespace, release["metadata"]["name"])
    assert described.returncode == 0, described.stderr
    assert "Routing:     GatewayRoute" in described.stdout
    assert ("Route:       HTTPRoute shop, backend shop: shop stable=75 canary=25 (Services shop-ballast-stable, "
            "shop-ballast-canary)") in described.stdout
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "releases", release["metadata"]["name"],
                                          {"metadata": {"annotations": {"ballast.dev/abort": "INC-9"}}})
    status = final_release(custom, namespace)["status"]
    assert (status["phase"], status["reason"]) == ("RolledBack", "Aborted"), status
    assert backend_refs(httproutes, namespace) == ORIGINAL


def test_a_superseded_release_hands_the_route_back_and_the_next_one_drives_it(slowly_routed, custom, apps, httproutes):
    namespace = slowly_routed
    change(apps, namespace, "app:2.0", GOOD)
    wait_for(lambda: canary_routed(httproutes, namespace), 60, "the route never sent traffic to the canary")
    change(apps, namespace, "app:3.0", GOOD)
    first = final_release(custom, namespace)
    assert first["status"]["phase"] == "Superseded", first["status"]
    second = release_in(custom, namespace, ("Progressing",), count=2)
    # The second release recorded the route as it was before either release, not the first one's weights.
    assert second["status"]["route"]["original"] == [{"rule": 0, "backendRefs": ORIGINAL}], second["status"]
    wait_for(lambda: canary_routed(httproutes, namespace), 60, "the second release never routed its canary")


def test_an_operator_killed_mid_step_restores_and_continues(routed, custom, apps, core, operator, httproutes):
    namespace = routed
    writes = RouteWrites(httproutes, namespace)
    change(apps, namespace, "app:2.0", GOOD)
    wait_for(lambda: canary_routed(httproutes, namespace), 60, "the route never sent traffic to the canary")
    operator.kill()
    operator.start()
    status = final_release(custom, namespace)["status"]
    assert status["phase"] == "Promoted", status
    assert [(a["step"], a["verdict"]) for a in status["analyses"] if a["verdict"] != "Inconclusive"] == [
        (0, "Pass"), (1, "Pass")]
    weights = writes.until_restored()
    assert weights[-1] == {"shop": 1} and STEP_25 in weights and STEP_50 in weights, weights
    assert backend_refs(httproutes, namespace) == ORIGINAL
    wait_for(lambda: ballast_services(core, namespace) == [], 30, "Ballast's Services outlived the release")


def test_a_foreign_edit_rolls_back_and_keeps_the_edit(slowly_routed, custom, apps, core, httproutes):
    namespace = slowly_routed
    change(apps, namespace, "app:2.0", GOOD)
    wait_for(lambda: canary_routed(httproutes, namespace), 60, "the route never sent traffic to the canary")
    # Someone shifts half the traffic by hand.
    httproutes.patch_namespaced_custom_object(GATEWAY, V1, namespace, ROUTES, "shop", {"spec": {"rules": [
        {"backendRefs": [{"name": "shop-ballast-stable", "port": 80, "weight": 1},
                         {"name": "shop-ballast-canary", "port": 80, "weight": 1}]}]}})
    release = final_release(custom, namespace)
    status = release["status"]
    assert (status["phase"], status["reason"]) == ("RolledBack", "RouteEdited"), status
    assert "HTTPRoute shop was changed by someone else during the release" in status["message"]
    # Their weights stay; only Ballast's Services leave the route.
    assert [(r["name"], r["weight"]) for r in backend_refs(httproutes, namespace)] == [("shop", 1)]
    warnings = wait_for(lambda: [e for e in events_for(core, namespace, release["metadata"]["name"])
                                 if e.reason == "RouteEdited"], 30, "no RouteEdited event")
    assert warnings[0].type == "Warning"
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "RouteEdited")


def test_a_tier_requiring_a_route_holds_a_release_without_one_until_the_policy_gives_it(
        custom, apps, core, namespace, operator, httproutes):
    name = govern(custom, apps, namespace, low_tier={**FAST_TIER, "requireGatewayRoute": True})
    try:
        shop_route(httproutes, core, namespace)
        change(apps, namespace, "app:2.0", GOOD)
        blocked = release_in(custom, namespace, ("Blocked",))
        assert blocked["status"]["message"] == (
            "Tier low requires a Gateway route, and service shop names none: set spec.traffic.gatewayRoute on its "
            "ServiceOwnership (or gatewayRoute on the tier in the ReleasePolicy). The release waits until then.")
        assert blocked["status"]["blockedBy"] == ["gateway-route"]
        assert not canary_routed(httproutes, namespace)
        # The platform team gives the tier a route named like the service: the release goes on through it.
        custom.patch_cluster_custom_object(GROUP, VERSION, "releasepolicies", name, {"spec": {"tiers": {"low": {
            **FAST_TIER, "requireGatewayRoute": True, "gatewayRoute": {"port": 80}}}}})
        status = final_release(custom, namespace)["status"]
        assert (status["phase"], status["routing"]) == ("Promoted", "GatewayRoute"), status
        assert backend_refs(httproutes, namespace) == ORIGINAL
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


def test_a_route_a_finished_release_left_routed_is_handed_back_by_the_next(routed, custom, apps, httproutes):
    namespace = routed
    change(apps, namespace, "app:2.0", GOOD)
    assert final_release(custom, namespace)["status"]["phase"] == "Promoted"
    # As if the operator had stopped between the release's last status write and its restore.
    httproutes.patch_namespaced_custom_object(GATEWAY, V1, namespace, ROUTES, "shop", {"spec": {"rules": [
        {"backendRefs": [{"name": "shop-ballast-stable", "port": 80, "weight": 90},
                         {"name": "shop-ballast-canary", "port": 80, "weight": 10}]}]}})
    change(apps, namespace, "app:3.0", GOOD)
    second = final_release(custom, namespace, count=2)["status"]
    assert (second["phase"], second["routing"]) == ("Promoted", "GatewayRoute"), second
    assert second["route"]["original"] == [{"rule": 0, "backendRefs": ORIGINAL}]
    assert backend_refs(httproutes, namespace) == ORIGINAL


def test_a_service_name_someone_else_holds_holds_the_release_and_is_never_touched(routed, custom, apps, core,
                                                                                  httproutes):
    namespace = routed
    core.create_namespaced_service(namespace, {"metadata": {"name": "shop-ballast-canary"}, "spec": {
        "selector": {"app": "other"}, "ports": [{"port": 80}]}})
    change(apps, namespace, "app:2.0", GOOD)
    blocked = release_in(custom, namespace, ("Blocked",))
    assert blocked["status"]["message"] == (
        f"Service {namespace}/shop-ballast-canary exists and is not the release's: Ballast needs that name to route "
        "the canary's traffic. Rename or delete it. The release waits until then.")
    assert core.read_namespaced_service("shop-ballast-canary", namespace).spec.selector == {"app": "other"}
    core.delete_namespaced_service("shop-ballast-canary", namespace)
    status = final_release(custom, namespace)["status"]
    assert (status["phase"], status["routing"]) == ("Promoted", "GatewayRoute"), status
    assert backend_refs(httproutes, namespace) == ORIGINAL
