"""deploy/argocd/health.lua, run in a Lua 5.1 as Argo CD runs it (tests/harness/argocd.py).

Over hand-made Deployments for every branch, over Deployments stored from a real release on the local API
server (tests/unit/data/argocd/, read by tests/integration/test_pipelines.py's release at each stage), and
the argocd-cm snippet against the script.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lupa
import pytest
import yaml

from tests.harness.argocd import HEALTH_SCRIPT, health

SNIPPET = HEALTH_SCRIPT.parent / "argocd-cm.yaml"
STORED = Path(__file__).parent / "data" / "argocd"


def deployment(paused=False, annotations=None, generation=2, observed=2, replicas=3, updated=3, current=3,
               available=3, progressing=None):
    status = {"observedGeneration": observed, "replicas": current, "updatedReplicas": updated,
              "availableReplicas": available}
    if progressing is not None:
        status["conditions"] = [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                                 "lastTransitionTime": "2026-01-01T00:00:00Z"},
                                {"type": "Progressing", "status": "True", **progressing}]
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "generation": generation,
                         "annotations": annotations or {}},
            "spec": {"replicas": replicas, "paused": paused}, "status": status}


def rolled_back(at: datetime, rollout_since: datetime, **kwargs):
    record = json.dumps({"00aa11bb22cc33dd": "1999-01-01T00:00:00+00:00", "5e6f7a8b9c0d1e2f": at.isoformat()})
    return deployment(annotations={"ballast.dev/rolled-back-revisions": record},
                      progressing={"reason": "NewReplicaSetAvailable",
                                   "lastTransitionTime": rollout_since.strftime("%Y-%m-%dT%H:%M:%SZ")}, **kwargs)


def test_a_deployment_ballast_holds_is_progressing_not_suspended():
    held = deployment(paused=True, updated=0, annotations={"ballast.dev/pending-revision": "9f8e7d6c5b4a3921"})
    answer = health(held)
    assert answer["status"] == "Progressing"
    assert answer["message"].startswith("Ballast holds pod template 9f8e7d6c5b4a3921 while its release runs")
    assert "`kubectl ballast status -n shop`" in answer["message"]


def test_a_deployment_paused_by_someone_else_is_suspended_as_argo_cd_says():
    assert health(deployment(paused=True)) == {"status": "Suspended", "message": "Deployment is paused"}


@pytest.mark.parametrize(("changes", "status", "message"), [
    ({}, "Healthy", None),
    ({"generation": 3}, "Progressing",
     "Waiting for rollout to finish: observed deployment generation less than desired generation"),
    ({"updated": 1}, "Progressing", "Waiting for rollout to finish: 1 out of 3 new replicas have been updated..."),
    ({"current": 4}, "Progressing", "Waiting for rollout to finish: 1 old replicas are pending termination..."),
    ({"available": 2}, "Progressing", "Waiting for rollout to finish: 2 of 3 updated replicas are available..."),
    ({"progressing": {"reason": "ProgressDeadlineExceeded", "lastTransitionTime": "2026-01-01T00:00:00Z"},
      "updated": 1}, "Degraded", 'Deployment "web" exceeded its progress deadline'),
])
def test_otherwise_argo_cds_own_deployment_logic(changes, status, message):
    answer = health(deployment(**changes))
    assert answer.get("status") == status and answer.get("message") == message


@pytest.mark.parametrize("at", [
    datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC),
    datetime(2028, 2, 29, 23, 59, 55, tzinfo=UTC),  # a leap day, across midnight and a month
    datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC),  # across a year
    datetime(2000, 2, 28, 23, 59, 59, tzinfo=UTC),  # 2000 is a leap year (divisible by 400)
])
def test_a_rollback_is_degraded_until_a_later_rollout_starts(at):
    # The rollback's own rollout starts moments after it (or before it, when it undid a native rollout).
    for since in (at, at + timedelta(seconds=1), at + timedelta(seconds=3), at - timedelta(minutes=5)):
        answer = health(rolled_back(at, since))
        assert answer["status"] == "Degraded", (at, since)
        assert answer["message"].startswith(f"Ballast rolled back pod template 5e6f7a8b9c0d1e2f at {at.isoformat()}")
    # A rollout that started later belongs to a later release: the record is history, Argo CD's logic applies.
    assert health(rolled_back(at, at + timedelta(seconds=4))) == {"status": "Healthy"}
    assert health(rolled_back(at, at + timedelta(days=40), updated=1))["status"] == "Progressing"


def test_a_newer_held_change_wins_over_an_old_rollback():
    old = rolled_back(datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC))
    old["spec"]["paused"] = True
    old["metadata"]["annotations"]["ballast.dev/pending-revision"] = "abc"
    assert health(old)["status"] == "Progressing"


@pytest.mark.parametrize("record", ["", "not json", "{}", '{"00aa": "yesterday"}'])
def test_an_unreadable_rollback_record_falls_back_to_argo_cds_logic(record):
    answer = health(deployment(annotations={"ballast.dev/rolled-back-revisions": record},
                               progressing={"reason": "NewReplicaSetAvailable",
                                            "lastTransitionTime": "2026-11-24T10:00:00Z"}))
    assert answer == {"status": "Healthy"}


def test_the_argocd_cm_snippet_carries_exactly_the_script_and_opens_the_libraries_it_needs():
    data = yaml.safe_load(SNIPPET.read_text())["data"]
    assert data["resource.customizations.health.apps_Deployment"] == HEALTH_SCRIPT.read_text()
    assert data["resource.customizations.useOpenLibs.apps_Deployment"] == "true"
    # Without them Argo CD has no string library, and the script would fail rather than judge.
    with pytest.raises(lupa.lua51.LuaError, match="string"):
        health(rolled_back(datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)),
               open_libs=False)


@pytest.mark.parametrize(("stored", "status"), [("held", "Progressing"), ("rolled-back", "Degraded"),
                                                ("promoted", "Healthy"), ("promoted-after-rollback", "Healthy")])
def test_deployments_stored_from_a_real_release(stored, status):
    obj = json.loads((STORED / f"{stored}.json").read_text())
    assert health(obj)["status"] == status
