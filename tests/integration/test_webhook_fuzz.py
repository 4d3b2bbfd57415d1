"""The webhook over real HTTPS, fed what the API server never sends: the answer is a well-formed review or a
4xx, never a 500, and the operator stays up and ready."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PATHS = ("workloads", "objects", "pause", "approvals")


def review(**request: Any) -> dict[str, Any]:
    base = {"uid": "0b1d3e4f", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "operation": "CREATE", "namespace": "nowhere", "name": "web",
            "userInfo": {"username": "mallory"},
            "object": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {**base, **request}}


MALFORMED = {
    "not-json": b"not json at all",
    "not-utf8": b"\xff\xfe\x00garbage",
    "empty-object": b"{}",
    "a-list": b"[1, 2, 3]",
    "no-request": json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
    "null-request": json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                "request": None}).encode(),
    "uid-is-a-number": json.dumps(review(uid=5)).encode(),
    "object-is-a-string": json.dumps(review(object="x")).encode(),
    "operation-unknown": json.dumps(review(operation=7)).encode(),
    "unknown-kind": json.dumps(review(kind={"group": "x", "version": "v1", "kind": "Nope"},
                                      resource={"group": "x", "version": "v1", "resource": "nopes"})).encode(),
    "3-mib": json.dumps(review(object={"metadata": {"annotations": {"a": "x" * 3 * 1024 * 1024}}})).encode(),
}


def post(operator, path: str, body: bytes) -> requests.Response:
    return requests.post(f"{operator.webhook_url}/{path}", data=body, timeout=10,
                         verify=str(operator.cert_dir / "tls.crt"), headers={"Content-Type": "application/json"})


def assert_well_answered(response: requests.Response, sent: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code == 200:
        answer = response.json()
        assert answer["kind"] == "AdmissionReview" and isinstance(answer["response"]["allowed"], bool)
        assert answer["response"]["uid"] == sent["request"]["uid"]
    else:
        assert 400 <= response.status_code < 500


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_reviews_get_a_4xx_and_the_operator_stays_up(operator, path, name):
    response = post(operator, path, MALFORMED[name])
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert operator.ready()


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=3), max_leaves=8)
FIELDS = st.sampled_from(["uid", "kind", "resource", "operation", "namespace", "name", "userInfo", "object",
                          "oldObject", "subResource", "dryRun", "options"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), changes=st.dictionaries(FIELDS, JSON, min_size=1, max_size=3))
def test_reviews_with_any_field_of_any_type_never_get_a_500(operator, path, changes):
    sent = review(**changes)
    assert_well_answered(post(operator, path, json.dumps(sent).encode()), sent)


OBJECTS = st.fixed_dictionaries({
    "metadata": st.fixed_dictionaries({"name": st.just("web")}, optional={
        "annotations": st.dictionaries(st.sampled_from(["ballast.dev/owner", "ballast.dev/alerts",
                                                        "ballast.dev/runbook", "ballast.dev/emergency",
                                                        "ballast.dev/rolled-back-revisions", "ballast.dev/retry",
                                                        "ballast.dev/change-type", "x"]), JSON, max_size=4),
        "labels": st.dictionaries(st.text(max_size=8), JSON, max_size=3)}),
    "spec": st.dictionaries(st.sampled_from(["replicas", "template", "selector", "paused"]), JSON, max_size=4),
})


@pytest.fixture
def warned_namespace(custom, namespace, operator):
    """A namespace whose policy only warns, once the operator knows it governs the namespace."""
    from ballast.api.common import GROUP, VERSION
    from tests.harness import wait_for
    from tests.integration.kube import release_policy

    name = f"warn-{namespace}"
    custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
        name, {"ballast.dev/test-ns": namespace}, admission={"mode": "Warn"}))

    def warns() -> bool:
        sent = review(namespace=namespace, object={"metadata": {"name": "web"}, "spec": {}})
        answer = post(operator, "workloads", json.dumps(sent).encode()).json()["response"]
        return bool(answer.get("warnings"))
    wait_for(warns, 30, "the operator never governed the namespace with the Warn policy")
    yield namespace
    custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(new=OBJECTS, old=st.none() | OBJECTS, operation=st.sampled_from(["CREATE", "UPDATE"]))
def test_a_warn_policy_never_refuses_whatever_the_workload_holds(operator, warned_namespace, new, old, operation):
    sent = review(namespace=warned_namespace, object=new, oldObject=old if operation == "UPDATE" else None,
                  operation=operation)
    response = post(operator, "workloads", json.dumps(sent).encode())
    assert_well_answered(response, sent)
    assert response.json()["response"]["allowed"] is True, response.json()
