"""Every replica answers admission from its own indexes (issue 12, item 3): two replicas whose indexes hold
the same objects give the same answer to the same request, through the real handlers; a replica whose
indexes are behind (a ServiceOwnership created a moment ago that its watch has not delivered yet) judges
the workload as nobody's, under the default tier, and its answer follows the policy's mode."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest

from ballast.controllers import startup, webhook_handlers
from ballast.controllers.runtime import Acting, Options, Runtime

SATURDAY = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OWNED = {"ballast.dev/owner": "payments", "ballast.dev/alerts": "CheckoutDown",
         "ballast.dev/runbook": "https://runbooks.example.com/checkout"}
MEDIUM_FREEZE = {"name": "weekend", "schedule": "0 18 * * 5", "duration": "62h", "timeZone": "UTC",
                 "tiers": ["medium"], "reason": "nobody watches releases on weekends"}
LOW_TIER_OWNERSHIP = {"metadata": {"name": "checkout", "resourceVersion": "7"},
                      "spec": {"selector": {"matchLabels": {"app": "checkout"}}, "owner": "payments",
                               "riskTier": "low", "runbook": "https://runbooks.example.com/checkout"}}


class Memo(dict):
    __getattr__ = dict.get


def replica(mode: str, ownerships: list[dict[str, Any]], leading: bool) -> Runtime:
    policy = {"metadata": {"name": "default", "resourceVersion": "1", "generation": 1},
              "spec": {"namespaceSelector": {"matchLabels": {"team": "shop"}}, "admission": {"mode": mode},
                       "freezeWindows": [MEDIUM_FREEZE]}}
    state = startup.build_runtime(Options(operator_username="system:serviceaccount:ballast:ballast"),
                                  namespaces={"shop": [{"team": "shop"}]}, workloads={},
                                  ownerships={"shop": ownerships} if ownerships else {},
                                  policies={"default": [policy]}, releases={}, acting=Acting(leading))
    state.indexes_filled.set()
    return state


def answer(state: Runtime, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[str]]:
    """The validating webhook's answer to one template change of Deployment shop/checkout, on Saturday."""
    monkeypatch.setattr(webhook_handlers, "now", lambda: SATURDAY)

    def body(image: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "checkout", "namespace": "shop", "labels": {"app": "checkout"},
                             "annotations": OWNED},
                "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    old, new = body("app:1"), body("app:2")
    warnings: list[str] = []
    try:
        asyncio.run(webhook_handlers.validate_workload(
            resource=kopf.Resource("apps", "v1", "deployments", kind="Deployment"), body=new, old=old, new=new,
            operation="UPDATE", subresource=None, userinfo={"username": "bob"}, dryrun=True, warnings=warnings,
            memo=Memo(runtime=state, options=state.options)))
    except kopf.AdmissionError as refusal:
        return f"refused: {refusal}", warnings
    return "admitted", warnings


@pytest.mark.parametrize("mode", ["Enforce", "Warn", "Audit"])
@pytest.mark.parametrize("ownerships", [[], [LOW_TIER_OWNERSHIP]], ids=["unowned", "owned"])
def test_a_leader_and_a_follower_with_the_same_indexes_answer_alike(mode, ownerships, monkeypatch):
    leader, follower = replica(mode, ownerships, leading=True), replica(mode, ownerships, leading=False)
    assert answer(leader, monkeypatch) == answer(follower, monkeypatch)


def test_a_replica_behind_judges_under_the_default_tier_and_its_answer_follows_the_mode(monkeypatch):
    # Up to date: the new ServiceOwnership puts checkout in the low tier, which the weekend does not freeze.
    assert answer(replica("Enforce", [LOW_TIER_OWNERSHIP], leading=False), monkeypatch) == ("admitted", [])

    # Behind: no ServiceOwnership selects checkout yet, so it is judged medium, which the weekend freezes.
    verdict, warnings = answer(replica("Enforce", [], leading=False), monkeypatch)
    assert verdict.startswith("refused: Deployment shop/checkout") and "weekend" in verdict and not warnings
    verdict, warnings = answer(replica("Warn", [], leading=False), monkeypatch)
    assert verdict == "admitted" and len(warnings) == 1 and "weekend" in warnings[0]
    assert answer(replica("Audit", [], leading=False), monkeypatch) == ("admitted", [])
