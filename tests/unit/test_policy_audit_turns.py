"""The policy audit over many namespaces lets the event loop serve admission between turns, and finds the
same violations as in one go."""

from __future__ import annotations

import asyncio

from ballast.controllers import policies, startup
from ballast.controllers.runtime import Acting, Options
from ballast.policy.workloads import WorkloadSummary

NAMESPACES = 3 * policies.AUDIT_NAMESPACES_PER_TURN + 1
OWNED = {"ballast.dev/owner": "payments", "ballast.dev/alerts": "CheckoutDown",
         "ballast.dev/runbook": "https://runbooks.example.com/checkout"}


def test_the_audit_takes_turns_with_other_tasks_and_misses_no_namespace():
    names = [f"team-{i:03d}" for i in range(NAMESPACES)]
    workloads = {name: [WorkloadSummary(name, "web", {"app": "web"}, OWNED),
                        WorkloadSummary(name, "batch", {"app": "batch"}, {})] for name in names}
    policy = {"metadata": {"name": "default", "resourceVersion": "1", "generation": 1},
              "spec": {"namespaceSelector": {"matchLabels": {"governed": "yes"}}}}
    runtime = startup.build_runtime(Options(), namespaces={name: [{"governed": "yes"}] for name in names},
                                    workloads=workloads, ownerships={}, policies={"default": [policy]},
                                    releases={}, acting=Acting(True))
    parsed = runtime.parsed_policies()[0]

    async def scenario() -> tuple[int, int]:
        served = 0

        async def admission() -> None:  # as a webhook request waiting for the loop would
            nonlocal served
            while True:
                served += 1
                await asyncio.sleep(0)

        other = asyncio.create_task(admission())
        await asyncio.sleep(0)
        before = served
        violations = await policies.audit(runtime, parsed, runtime.governance())
        during = served - before
        other.cancel()
        return len(violations), during

    violations, served_during_audit = asyncio.run(scenario())
    assert violations == 3 * NAMESPACES  # batch misses its owner, alerts and runbook in every namespace
    assert served_during_audit >= 3  # at least once per turn of AUDIT_NAMESPACES_PER_TURN namespaces


def test_the_resync_audits_again_only_after_a_change_the_audit_reads(monkeypatch):
    from ballast.controllers.triggers import trigger

    names = ["team-a", "team-b"]
    runtime = startup.build_runtime(
        Options(), namespaces={name: [{"governed": "yes"}] for name in names},
        workloads={name: [WorkloadSummary(name, "batch", {"app": "batch"}, {})] for name in names},
        ownerships={}, releases={}, acting=Acting(True),
        policies={"default": [{"metadata": {"name": "default", "resourceVersion": "1", "generation": 1},
                               "spec": {"namespaceSelector": {"matchLabels": {"governed": "yes"}}}}]})
    runtime.indexes_filled.set()
    audits = []
    real_audit = policies.audit

    async def counted(*args):
        audits.append(args[1].name)
        return await real_audit(*args)
    monkeypatch.setattr(policies, "audit", counted)
    parsed = runtime.parsed_policies()[0]
    batch = {"metadata": {"name": "batch", "namespace": "team-a", "labels": {"app": "batch"}}}

    status_write = {**batch, "status": {"readyReplicas": 1}}  # kube-controller-manager's
    relabelled = {"metadata": {**batch["metadata"], "labels": {"app": "batch", "v": "2"}}}
    runtime.acting.leading = False  # trigger only records what it saw: no reconciler runs in this test

    async def scenario() -> list[int]:
        found = []
        for event in (None, status_write, relabelled):
            trigger(runtime, "deployments", event or batch, "MODIFIED" if event else None)
            found.append(len(await policies.audited(runtime, parsed, runtime.governance())))
            found.append(len(await policies.audited(runtime, parsed, runtime.governance())))  # the next resync
        return found

    found = asyncio.run(scenario())
    assert found == [6, 6, 6, 6, 6, 6]  # same violations every time
    assert audits == ["default", "default"]  # the first, and after the relabel; not after the status write
