"""The Gateway API v1 HTTPRoute CRD the tests use (written from the specification) in the local API server.

Ballast's exact traffic weights (issue 13, item 1) will write an HTTPRoute's backendRefs weights; these
tests pin what the API server then accepts, defaults and refuses, so the schema is known good before the
engine relies on it.
"""

from __future__ import annotations

import json

import kubernetes
import pytest

from tests.harness.gateway import install_httproute_crd

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"


@pytest.fixture(scope="module")
def httproutes(cluster, api_client):
    install_httproute_crd(cluster.kubeconfig)
    return kubernetes.client.CustomObjectsApi(api_client)


def route(name: str, *backends: dict, **rule: object) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute", "metadata": {"name": name},
            "spec": {"parentRefs": [{"name": "edge"}], "hostnames": ["shop.example.com"],
                     "rules": [{"backendRefs": list(backends), **rule}]}}


def test_a_weighted_route_is_stored_with_the_specifications_defaults(httproutes, namespace):
    body = route("shop", {"name": "shop", "port": 80, "weight": 99}, {"name": "shop-canary", "port": 80, "weight": 1},
                 {"name": "shop-spare", "port": 80})
    stored = httproutes.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    spec = stored["spec"]
    assert spec["parentRefs"] == [{"group": GROUP, "kind": "Gateway", "name": "edge"}]
    assert spec["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert [(b["name"], b["kind"], b["group"], b["weight"]) for b in spec["rules"][0]["backendRefs"]] == [
        ("shop", "Service", "", 99), ("shop-canary", "Service", "", 1), ("shop-spare", "Service", "", 1)]
    # What the release engine will do: a merge patch of the rules with new weights.
    patched = httproutes.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "shop", {"spec": {"rules": [
        {"backendRefs": [{"name": "shop", "port": 80, "weight": 75}, {"name": "shop-canary", "port": 80,
                                                                       "weight": 25}]}]}})
    assert [b["weight"] for b in patched["spec"]["rules"][0]["backendRefs"]] == [75, 25]


def test_a_route_without_rules_sends_everything_to_no_backend_by_default(httproutes, namespace):
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "HTTPRoute", "metadata": {"name": "empty"},
            "spec": {"parentRefs": [{"name": "edge"}]}}
    stored = httproutes.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    assert stored["spec"]["rules"] == [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]


@pytest.mark.parametrize(("backend", "rule", "field"), [
    ({"name": "shop", "weight": -1}, {}, "weight"),
    ({"name": "shop", "weight": 1000001}, {}, "weight"),
    ({"port": 80}, {}, "name"),
    ({"name": "shop", "port": 0}, {}, "port"),
    ({"name": "shop"}, {"matches": [{"path": {"type": "Glob", "value": "/"}}]}, "type"),
    ({"name": "shop"}, {"timeouts": {"request": "ten seconds"}}, "request"),
    ({"name": "shop"}, {"filters": [{"type": "Teleport"}]}, "type"),
])
def test_the_api_server_refuses_what_the_specification_does(httproutes, namespace, backend, rule, field):
    with pytest.raises(kubernetes.client.ApiException) as refused:
        httproutes.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, route("bad", backend, **rule))
    assert refused.value.status == 422
    assert field in json.loads(refused.value.body)["message"]


def test_at_most_sixteen_backends_per_rule(httproutes, namespace):
    backends = [{"name": f"b{i}", "port": 80} for i in range(17)]
    with pytest.raises(kubernetes.client.ApiException) as refused:
        httproutes.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, route("many", *backends))
    assert refused.value.status == 422 and "backendRefs" in json.loads(refused.value.body)["message"]
