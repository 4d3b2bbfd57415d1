"""The annotations on a Deployment only the webhook and the operator write (a pure decision)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ballast.api.common import RiskTier
from ballast.api.revisions import template_hash
from ballast.api.vocabulary import (
    CHANGED_BY_ANNOTATION,
    PENDING_ANNOTATION,
    PENDING_EMERGENCY_ANNOTATION,
    PENDING_TIER_ANNOTATION,
    ROLLED_BACK_ANNOTATION,
    WEBHOOK_ONLY_ANNOTATIONS,
)
from ballast.policy.bookkeeping import Mutation, mutation

ME = json.dumps({"username": "alice"})
LOW = RiskTier.LOW
FORGED = {CHANGED_BY_ANNOTATION: json.dumps({"username": "bob"}), PENDING_ANNOTATION: "0123456789abcdef"}
ROLLED_BACK = {ROLLED_BACK_ANNOTATION: json.dumps({"0123456789abcdef": "2026-11-25T12:00:00+00:00"})}


def deployment(annotations=None, image="app:1", paused=False):
    return {"metadata": {"name": "shop", "namespace": "ns", "annotations": dict(annotations or {})},
            "spec": {"paused": paused, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}


def test_a_create_loses_forged_bookkeeping():
    assert mutation("CREATE", None, deployment({**FORGED, "keep": "me"}), ME, LOW) == Mutation(
        annotations={CHANGED_BY_ANNOTATION: None, PENDING_ANNOTATION: None})


def test_a_metadata_only_update_cannot_write_or_drop_bookkeeping():
    assert mutation("UPDATE", deployment(), deployment(FORGED), ME, LOW).annotations == {
        CHANGED_BY_ANNOTATION: None, PENDING_ANNOTATION: None}
    # The first of the two requests that beat the rolled-back guard: dropping the record.
    assert mutation("UPDATE", deployment(ROLLED_BACK), deployment(), ME, LOW).annotations == ROLLED_BACK


def test_a_template_change_is_held_with_its_author_and_keeps_the_rolled_back_record():
    new = deployment(image="app:2")
    change = mutation("UPDATE", deployment(ROLLED_BACK), new, ME, LOW)
    assert change.pause
    assert change.annotations == {PENDING_ANNOTATION: template_hash(new["spec"]["template"]),
                                  CHANGED_BY_ANNOTATION: ME, PENDING_TIER_ANNOTATION: "low", **ROLLED_BACK}


def test_break_glass_counts_only_in_the_request_that_sets_it():
    fresh = mutation("UPDATE", deployment(), deployment({"ballast.dev/emergency": "INC-7"}, image="app:2"), ME, LOW)
    assert fresh.annotations[PENDING_EMERGENCY_ANNOTATION] == "INC-7"
    stale_old = deployment({"ballast.dev/emergency": "INC-7", PENDING_EMERGENCY_ANNOTATION: "INC-7"})
    # The next change, sent as the whole stored object with a new image (as `kubectl apply` of an export does):
    stale = mutation("UPDATE", stale_old, {**stale_old, "spec": deployment(image="app:3")["spec"]}, ME, LOW)
    assert stale.annotations[PENDING_EMERGENCY_ANNOTATION] is None  # removed: it is not this change's


def test_a_release_under_way_keeps_the_deployment_paused():
    held = deployment({PENDING_ANNOTATION: "x"}, paused=True)
    assert mutation("UPDATE", held, deployment({PENDING_ANNOTATION: "x"}), ME, LOW) == Mutation(pause=True)


KEYS = st.sampled_from([*sorted(WEBHOOK_ONLY_ANNOTATIONS), "a"])


@given(old=st.dictionaries(KEYS, st.text(max_size=4)), new=st.dictionaries(KEYS, st.text(max_size=4)))
def test_without_a_template_change_people_never_change_what_the_webhook_writes(old, new):
    change = mutation("UPDATE", deployment(old), deployment(new), ME, LOW)
    result = {**new, **change.annotations}
    assert {k: v for k, v in result.items() if k in WEBHOOK_ONLY_ANNOTATIONS and v is not None} == \
        {k: v for k, v in old.items() if k in WEBHOOK_ONLY_ANNOTATIONS}
