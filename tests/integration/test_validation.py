"""What the API server and Ballast's own webhook refuse in policies and ownerships, and what they let in.

The CRD schema says what OpenAPI can (a duration's form and length, a URL's scheme); the operator's
webhook for Ballast's objects runs the models for the rest (a schedule that never occurs, the duration
cap, a URL's host and port).
"""

from __future__ import annotations

import json

import kubernetes
import pytest

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.integration.kube import release_policy, service_ownership


def refusal(call) -> str | None:
    """The message of the API server's 422 for a dry-run create, or None when it would be created."""
    try:
        call()
    except kubernetes.client.ApiException as error:
        assert error.status == 422, error.body
        return json.loads(error.body)["message"]
    return None


def create_policy(custom, name, dry_run="All", **spec):
    return custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies",
                                               release_policy(name, {"team": "nowhere"}, **spec), dry_run=dry_run)


def create_ownership(custom, namespace, runbook, dry_run="All"):
    body = service_ownership("checkout", {"app": "checkout"}, runbook=runbook)
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", body,
                                                  dry_run=dry_run)


@pytest.fixture
def webhook(operator, custom, namespace) -> None:
    """Wait until the API server calls the operator's webhook for Ballast's objects (configuration propagates)."""
    never = [{"name": "never", "schedule": "0 0 30 2 *", "duration": "1h"}]
    wait_for(lambda: refusal(lambda: create_policy(custom, f"probe-{namespace}", freezeWindows=never)), 30,
             "the webhook for Ballast's objects never answered")


@pytest.mark.parametrize(("spec", "expected"), [
    ({"freezeWindows": [{"name": "leap", "schedule": "0 0 30 2 *", "duration": "1h"}]},
     "freeze window 'leap': schedule '0 0 30 2 *' names a date that never occurs (such as 30 February or "
     "31 April): pick days every named month has"),
    ({"freezeWindows": [{"name": "april", "schedule": "0 0 31 4 *", "duration": "1h"}]}, "never occurs"),
    ({"rollbackBlockPeriod": "9999999999d"},
     "'9999999999d' is longer than the longest duration allowed, 366d: use a shorter one"),
])
def test_the_webhook_refuses_what_would_break_admission(webhook, custom, namespace, spec, expected):
    name = f"bad-{namespace}"
    message = refusal(lambda: create_policy(custom, name, **spec))
    assert message.startswith(f"admission webhook \"objects.ballast.dev\" denied the request: ReleasePolicy {name} "
                              "is invalid: spec.")
    assert expected in message


def test_the_schema_refuses_a_duration_longer_than_any_allowed(custom, crds, namespace):
    message = refusal(lambda: create_policy(custom, f"bad-{namespace}", rollbackBlockPeriod="9" * 40 + "d"))
    assert message is not None and "rollbackBlockPeriod" in message and "32" in message


@pytest.mark.parametrize("runbook", ["HTTPS://Runbooks.Example.com/checkout", "http://[::1]:8080/x",
                                     "https://bücher.example/ablauf"])
def test_valid_runbook_urls_are_accepted(webhook, custom, namespace, runbook):
    created = create_ownership(custom, namespace, runbook, dry_run=None)
    assert created["spec"]["runbook"] == runbook


@pytest.mark.parametrize("runbook", ["http://:8080/x", "https://[zz]/x", "http://a:99999/"])
def test_runbook_urls_without_a_usable_host_or_port_are_refused(webhook, custom, namespace, runbook):
    message = refusal(lambda: create_ownership(custom, namespace, runbook))
    assert message is not None
    assert f"ServiceOwnership {namespace}/checkout is invalid: spec.runbook" in message
    assert "is not an http(s) URL with a host, such as https://runbooks.example.com/checkout" in message
