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
