"""A bad value stored in one policy never crashes admission or the error-budget task (issue 9, item 14).

Values the models now refuse (a schedule that never occurs, a duration past the cap) can still be stored:
written before this version, or while the operator's webhook was down (its failurePolicy for Ballast's own
objects is Ignore). The operator parses stored policies with the same models, so such a policy is reported
invalid and enforced with defaults; and whatever else goes wrong inside the rules follows the policy's mode.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest

from ballast.controllers import startup, webhook_handlers
from ballast.controllers.runtime import Options, Runtime
from ballast.policy.rules import WorkloadRequest, evaluate
from ballast.policy.workloads import WorkloadSummary

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
OWNED = {"ballast.dev/owner": "payments", "ballast.dev/alerts": "CheckoutDown",
         "ballast.dev/runbook": "https://runbooks.example.com/checkout"}


def policy(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": "1", "generation": 1},
            "spec": {"namespaceSelector": {"matchLabels": {"team": namespace}}, **spec}, "status": {}}


def ownership(name: str, app: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": "1"},
            "spec": {"selector": {"matchLabels": {"app": app}}, "owner": "payments",
                     "runbook": "https://runbooks.example.com/checkout", "slo": {"availability": 0.999}}}


def runtime(*policies: dict[str, Any], ownerships: dict[str, list] | None = None,
            workloads: dict[str, list] | None = None) -> Runtime:
    return startup.build_runtime(
        Options(prometheus_url="http://127.0.0.1:9", prometheus_refresh_seconds=3600),
        namespaces={ns: [{"team": ns}] for ns in ("shop", "search")},
        workloads=workloads or {}, ownerships=ownerships or {},
        policies={p["metadata"]["name"]: [p] for p in policies}, releases={},
    )


def change(namespace: str, annotations: dict[str, str]) -> WorkloadRequest:
    def body(image: str) -> dict[str, Any]:
        return {"metadata": {"name": "checkout", "namespace": namespace, "annotations": annotations},
                "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    return WorkloadRequest("UPDATE", "Deployment", namespace, "checkout", new=body("app:2"), old=body("app:1"))


@pytest.mark.parametrize("stored", [
    {"freezeWindows": [{"name": "leap", "schedule": "0 0 30 2 *", "duration": "1h"}]},
    {"freezeWindows": [{"name": "april", "schedule": "0 0 31 4 *", "duration": "1h"}]},
    {"freezeWindows": [{"name": "forever", "schedule": "0 18 * * 5", "duration": "9999999999d"}]},
    {"rollbackBlockPeriod": "9999999999d"},
])
def test_a_stored_bad_value_makes_its_policy_invalid_not_admission_crash(stored):
    state = runtime(policy("broken", "shop", **stored), policy("other", "search"))
    broken = next(p for p in state.parsed_policies() if p.name == "broken")
    assert broken.invalid is not None and broken.spec is None
    assert any(word in broken.invalid for word in ("never occurs", "366d"))
    for namespace in ("shop", "search"):
        context = state.admission_context(namespace, NOW)
        assert evaluate(change(namespace, OWNED), context).allowed
        refused = evaluate(change(namespace, {}), context)  # the guardrails hold with the defaults
        assert not refused.allowed and "is missing annotation ballast.dev/owner" in refused.refusal


class Memo(dict):
    __getattr__ = dict.get


def call_validate_workload(state: Runtime, namespace: str, warnings: list[str]) -> None:
    request = change(namespace, OWNED)
    asyncio.run(webhook_handlers.validate_workload(
        resource=kopf.Resource("apps", "v1", "deployments", kind="Deployment"), body=request.new, old=request.old,
        new=request.new, operation="UPDATE", subresource=None, userinfo={"username": "bob"}, dryrun=False,
        warnings=warnings, memo=Memo(runtime=state)))


@pytest.mark.parametrize("mode", ["Enforce", "Warn", "Audit"])
def test_an_unexpected_error_in_the_rules_follows_the_policys_mode(mode, monkeypatch):
    def broken_rule(*_: Any) -> None:
        raise RuntimeError("a bug in a rule")
    monkeypatch.setattr(webhook_handlers, "evaluate", broken_rule)
    state = runtime(policy("default", "shop", admission={"mode": mode}))
    state.indexes_filled.set()
    warnings: list[str] = []
    if mode == "Enforce":
        with pytest.raises(kopf.AdmissionError) as refused:
            call_validate_workload(state, "shop", warnings)
        assert refused.value.code == 500
        assert str(refused.value).startswith("Deployment shop/checkout could not be checked against ReleasePolicy "
                                             "default because of an internal error in Ballast")
    else:
        call_validate_workload(state, "shop", warnings)  # admitted
    assert len(warnings) == (1 if mode == "Warn" else 0)
    assert all("admitted because the policy's mode is Warn" in w for w in warnings)


def test_one_failing_error_budget_does_not_stop_the_others(monkeypatch):
    measured = threading.Event()

    def measure(url, spec, namespace, names, availability, window):
        if names == ["broken"]:
            raise OverflowError("a bad value")
        measured.set()
        return 0.5

    monkeypatch.setattr(startup, "measure_error_budget", measure)
    workloads = {"shop": [WorkloadSummary("shop", "broken", {"app": "broken"}),
                          WorkloadSummary("shop", "checkout", {"app": "checkout"})]}
    state = runtime(policy("default", "shop"), ownerships={"shop": [ownership("a-broken", "broken"),
                                                                    ownership("b-checkout", "checkout")]},
                    workloads=workloads)
    state.ownership_reconciler = Memo(request=lambda namespace: None)
    state.indexes_filled.set()  # budgets are measured once kopf has filled the indexes

    async def scenario() -> None:
        task = asyncio.create_task(startup._refresh_error_budgets(state))
        try:
            assert await asyncio.to_thread(measured.wait, 10), "the second budget was never measured"
            assert await asyncio.wait_for(_until(lambda: ("shop", "b-checkout") in state.error_budgets), 10)
            assert not task.done()  # the task lives on
        finally:
            task.cancel()

    asyncio.run(scenario())
    assert state.error_budgets == {("shop", "b-checkout"): 0.5}


async def _until(check) -> bool:
    while not check():
        await asyncio.sleep(0)  # yield to the task under test; no wall-clock waiting
    return True
