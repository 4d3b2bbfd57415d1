"""What counts as an AdmissionReview kopf can serve (the webhook answers anything else with a 400)."""

from __future__ import annotations

import pytest

from ballast.webhooks.reviews import review_problem

GOOD = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                    "operation": "UPDATE", "object": {}, "oldObject": None, "namespace": "a", "dryRun": False}}


def test_a_review_from_the_api_server_is_served():
    assert review_problem(GOOD) is None


@pytest.mark.parametrize(("change", "says"), [
    ({"kind": "Other"}, "not an AdmissionReview"),
    ({"request": None}, "no request object"),
    ({"request": {**GOOD["request"], "uid": 5}}, "request.uid"),
    ({"request": {**GOOD["request"], "kind": {"group": "apps"}}}, "request.kind"),
    ({"request": {**GOOD["request"], "operation": "PATCH"}}, "request.operation"),
    ({"request": {**GOOD["request"], "operation": []}}, "request.operation"),
    ({"apiVersion": {}}, "not an AdmissionReview"),
    ({"request": {**GOOD["request"], "object": "x"}}, "request.object"),
    ({"request": {**GOOD["request"], "namespace": 3}}, "request.namespace"),
    ({"request": {**GOOD["request"], "dryRun": "yes"}}, "request.dryRun"),
])
def test_anything_else_says_what_is_wrong(change, says):
    assert says in review_problem({**GOOD, **change})


def test_not_an_object():
    assert review_problem([GOOD]) == "The body is not a JSON object."
