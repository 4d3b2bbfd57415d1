"""The webhook server reads an object's namespace from the AdmissionReview request (a pure function)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ballast.webhooks.server import with_request_namespace


def test_objects_take_the_requests_namespace():
    review = {"request": {"namespace": "governed", "object": {"metadata": {"name": "x"}},
                          "oldObject": {"metadata": {"name": "x", "namespace": ""}}}}
    with_request_namespace(review)
    assert review["request"]["object"]["metadata"]["namespace"] == "governed"
    assert review["request"]["oldObject"]["metadata"]["namespace"] == "governed"


@given(st.recursive(st.none() | st.text(max_size=3) | st.integers(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["request", "namespace", "object", "oldObject", "metadata"]), inner,
                        max_size=4)))
def test_any_review_shape_is_tolerated(review):
    with_request_namespace(review)  # malformed reviews are kopf's to refuse, never a crash here
