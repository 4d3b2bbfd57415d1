"""A malformed ``ballast.dev/rolled-back-revisions`` annotation never raises, in admission or in the release engine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ballast.api.releasepolicy import ReleasePolicySpec
from ballast.api.revisions import ROLLED_BACK_HISTORY, rolled_back_record, rolled_back_revisions, template_hash
from ballast.api.vocabulary import ROLLED_BACK_ANNOTATION
from ballast.policy.rules import (
    AdmissionContext,
    Rule,
    WorkloadRequest,
    evaluate,
    rolled_back_at,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OWNED = {"ballast.dev/owner": "payments", "ballast.dev/alerts": "CheckoutDown",
         "ballast.dev/runbook": "https://runbooks.example.com/checkout"}
TEMPLATE = {"metadata": {"labels": {"app": "checkout"}}, "spec": {"containers": [{"name": "app", "image": "app:bad"}]}}
REVISION = template_hash(TEMPLATE)
MALFORMED = [
    "not json", "", "[]", "null", "42", '"text"', '{"x": 5}', f'{{"{REVISION}": "yesterday"}}',
    f'{{"{REVISION}": {{"at": "2026-11-23T11:00:00Z"}}}}', f'{{"{REVISION}": null}}',
    "[" * 5000 + "]" * 5000,  # RecursionError in json.loads
    '{"a": ' * 3000 + "1" + "}" * 3000,
    json.dumps({f"r{i}": "2026-11-23T11:00:00+00:00" for i in range(2000)}),  # longer than any record Ballast writes
    "[" * 100_000 + "]" * 100_000,  # too long to be read at all
]


def stored(record: str) -> dict:
    return {"metadata": {"name": "checkout", "namespace": "shop",
                         "annotations": {**OWNED, ROLLED_BACK_ANNOTATION: record}},
            "spec": {"template": {**TEMPLATE, "spec": {"containers": [{"name": "app", "image": "app:good"}]}}}}


def reapply(record: str) -> WorkloadRequest:
    old = stored(record)
    new = {**old, "spec": {"template": TEMPLATE}}
    return WorkloadRequest("UPDATE", "Deployment", "shop", "checkout", new=new, old=old, username="bob")


def context() -> AdmissionContext:
    return AdmissionContext("default", ReleasePolicySpec(), (), NOW)


@pytest.mark.parametrize("record", MALFORMED, ids=lambda r: r[:30])
def test_a_malformed_record_is_ignored_not_an_error(record):
    assert rolled_back_at(stored(record), REVISION) is None
    decision = evaluate(reapply(record), context())
    assert decision.allowed and decision.findings == []
    kept = json.loads(rolled_back_record({ROLLED_BACK_ANNOTATION: record}, REVISION, NOW))
    assert kept == {REVISION: NOW.isoformat()}


def test_a_time_without_an_offset_is_read_as_utc():
    # datetime.fromisoformat gives a naive time here, which made `now - when` raise TypeError.
    record = json.dumps({REVISION: "2026-11-23T11:00:00"})
    assert rolled_back_at(stored(record), REVISION) == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    decision = evaluate(reapply(record), context())
    assert not decision.allowed
    assert [f.rule for f in decision.findings] == [Rule.ROLLED_BACK_REVISION]


def test_readable_entries_survive_beside_broken_ones():
    record = json.dumps({REVISION: "2026-11-23T11:00:00+01:00", "junk": "soon", "nested": {"a": 1}})
    assert rolled_back_revisions({ROLLED_BACK_ANNOTATION: record}) == {
        REVISION: datetime(2026, 11, 23, 10, 0, tzinfo=UTC)}
    assert not evaluate(reapply(record), context()).allowed
    written = json.loads(rolled_back_record({ROLLED_BACK_ANNOTATION: record}, "next", NOW))
    assert set(written) == {REVISION, "next"}


def test_the_record_keeps_the_most_recent_entries_by_time_not_by_text():
    # Sorting the texts dropped a recent entry written with a negative offset ("2026-11-22T23:30:00-12:00"
    # sorts before "2026-11-23T02:00:00+00:00"); entries are compared as instants now.
    older = {f"r{i}": (NOW - timedelta(hours=10 - i)).isoformat() for i in range(ROLLED_BACK_HISTORY)}
    recent = (NOW - timedelta(minutes=30)).astimezone(timezone(timedelta(hours=-12))).isoformat()
    record = json.dumps({**older, "recent": recent})
    written = json.loads(rolled_back_record({ROLLED_BACK_ANNOTATION: record}, "newest", NOW))
    assert len(written) == ROLLED_BACK_HISTORY
    assert {"recent", "newest"} <= set(written) and not {"r0", "r1"} & set(written)


@given(st.one_of(st.text(max_size=300), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=20), children,
                                                                               max_size=4)),
    max_leaves=30).map(json.dumps)))
def test_no_record_makes_admission_or_the_release_engine_raise(record):
    evaluate(reapply(record), context())
    written = json.loads(rolled_back_record({ROLLED_BACK_ANNOTATION: record}, REVISION, NOW))
    assert written[REVISION] == NOW.isoformat()
