"""Admission never goes dark (issue 12, item 2): two real operator replicas behind one webhook endpoint, 50
governed creates per second, and the leader killed, rolled or stopped. Not one admission request fails,
and the release under way ends with each step done exactly once; ``benchmarks/failover.py`` prints how
long releases stood still (``tests/integration/failover.py`` has the scenario)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.balancer import Balancer
from tests.integration.failover import FAULTS, Replicas, delete_policy, in_flight_on_a_killed_replica, prepare_cart, run
from tests.integration.releasing import govern


@pytest.fixture
def replicas(cluster, api_client, core, operator, namespace, tmp_path) -> Iterator[Replicas]:
    """Two replicas behind a balancer, electing their leader in their own namespace; the session operator
    steps aside (the webhook configurations follow whoever acts)."""
    home = f"{namespace}-operator"
    core.create_namespace({"metadata": {"name": home}})
    operator.stop()
    with Balancer() as balancer:
        made = Replicas(cluster, api_client, tmp_path, home, balancer)
        try:
            made.start()
            made.start()
            yield made
        finally:
            made.stop_all()
            operator.start()
            core.delete_namespace(home)


@pytest.mark.parametrize("fault", FAULTS)
def test_admission_never_fails_and_every_step_is_done_once(fault, replicas, custom, apps, namespace):
    policy = govern(custom, apps, namespace)
    try:
        prepare_cart(apps, custom, namespace)
        outcome = run(fault, replicas, apps, custom, namespace)
    finally:
        delete_policy(custom, policy)
    assert outcome.sent >= 500
    # Only a SIGKILL may cost the calls the killed replica was answering (see tests/integration/failover.py).
    failed = [f for f in outcome.failures if not (fault == "kill" and in_flight_on_a_killed_replica(f))]
    assert failed == [], f"{len(failed)} of {outcome.sent} creates failed: {failed[:3]}"
    assert outcome.unserved == 0, "a connection found no ready replica"
    assert outcome.phase == "Promoted", outcome
    passed = [step for step, verdict in outcome.steps if verdict == "Pass"]
    assert passed == [0, 1], f"each step passes exactly once, in order: {outcome.steps}"
