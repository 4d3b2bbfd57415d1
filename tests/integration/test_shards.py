"""Two shards of the operator split the namespaces between them, with neither overlap nor gap.

Two real `ballast operator run --shard` processes on the real API server: the default shard `main`
(`!ballast.dev/shard`) and shard `b` (`ballast.dev/shard=b`), each with its own Lease. One policy governs
four namespaces, two of each. What each shard does is read from what only it can show: its webhook
configuration's selectors as the API server holds them, its own admission counters, its own per-service
gauges (set by the ownership passes it runs), its own release counters, and its entry in the policy's
status. Then a namespace is relabelled out of every shard (a gap, which the policy's Sharded condition
names) and into shard b (which takes it over).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import kubernetes
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ballast.api.common import GROUP, VERSION, LabelSelector
from tests.harness import wait_for
from tests.harness.operator import OperatorProcess
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, condition, deployment, release_policy, service_ownership
from tests.integration.releasing import FAST_TIER, GOOD, change, created, final_release
from tests.integration.test_admission import refused

SHARD = "ballast.dev/shard"
SELECTORS = {"main": f"!{SHARD}", "b": f"{SHARD}=b"}
CONFIGURATIONS = ("ballast.dev", *(f"{name}.ballast.dev" for name in SELECTORS))


def drop_webhook_configurations(api_client) -> None:
    admission = kubernetes.client.AdmissionregistrationV1Api(api_client)
    for name in CONFIGURATIONS:
        for delete in (admission.delete_validating_webhook_configuration,
                       admission.delete_mutating_webhook_configuration):
            with contextlib.suppress(kubernetes.client.ApiException):
                delete(name)


@pytest.fixture
def shards(cluster, core, operator, api_client, tmp_path) -> Iterator[dict[str, OperatorProcess]]:
    """Shards main and b, not started; the session operator steps aside and its webhooks with it (it writes
    them again when it starts)."""
    home = f"shards-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": home}})
    made = {name: OperatorProcess(
        cluster, tmp_path / f"{name}.log",
        extra_args=("--leader-election", "--operator-namespace", home, "--leader-election-id", f"ballast-{name}",
                    "--leader-election-lease-seconds", "6", "--shard", name, "--shard-selector", selector))
        for name, selector in SELECTORS.items()}
    operator.stop()
    drop_webhook_configurations(api_client)  # a stopped operator's Fail webhooks would refuse the shards' Releases
    try:
        yield made
    finally:
        for shard in made.values():
            shard.stop()
        drop_webhook_configurations(api_client)
        operator.start()
        core.delete_namespace(home)


def samples(shard: OperatorProcess, name: str) -> list:
    text = requests.get(shard.metrics_url, timeout=5).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def refusals(shard: OperatorProcess) -> float:
    return sum(s.value for s in samples(shard, "ballast_admission_requests_total") if s.labels["decision"] == "refused")


def promotions(shard: OperatorProcess) -> float:
    return sum(s.value for s in samples(shard, "ballast_release_transitions_total") if s.labels["phase"] == "Promoted")


def served_namespaces(shard: OperatorProcess) -> set[str]:
    """The namespaces whose ServiceOwnerships this shard's ownership passes have reconciled."""
    return {s.labels["namespace"] for s in samples(shard, "ballast_service_releases")}


def picking_configurations(api_client, policy: str, labels: dict[str, str]) -> list[str]:
    """Which shards' workload webhooks for ``policy`` the API server would call for a namespace with these labels."""
    admission = kubernetes.client.AdmissionregistrationV1Api(api_client)
    picked = []
    for name in SELECTORS:
        with contextlib.suppress(kubernetes.client.ApiException):
            configuration = admission.read_validating_webhook_configuration(f"{name}.ballast.dev")
            for hook in configuration.webhooks:
                if hook.name == f"{policy}.workloads.ballast.dev":
                    wire = api_client.sanitize_for_serialization(hook.namespace_selector)
                    if LabelSelector.model_validate(wire).matches(labels):
                        picked.append(name)
    return picked


def policy_status(custom, name: str) -> dict:
    return custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", name).get("status") or {}


def shard_counts(status: dict) -> dict[str, int]:
    return {entry["name"]: entry["governedNamespaceCount"] for entry in status.get("shards") or []}


def sharded(custom, name: str) -> dict | None:
    return condition(custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", name), "Sharded")


def test_two_shards_split_the_namespaces_without_overlap_or_gap(shards, api_client, core, apps, custom):
    run = uuid.uuid4().hex[:6]
    policy = f"shards-{run}"
    extra = {"a1": {}, "a2": {}, "b1": {SHARD: "b"}, "b2": {SHARD: "b"}}
    labels = {f"{run}-{key}": {"ballast.dev/shards-test": run, **more} for key, more in extra.items()}
    for namespace, its_labels in labels.items():
        core.create_namespace({"metadata": {"name": namespace, "labels": its_labels}})
    try:
        for namespace in labels:  # before the policy: admitted, and then found by each shard's audit
            apps.create_namespaced_deployment(namespace, deployment("legacy", {"app": "legacy"}, replicas=0))
        custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
            policy, {"ballast.dev/shards-test": run}, tiers={"low": FAST_TIER}))
        for namespace in labels:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                                   service_ownership("shop", {"app": "shop"}, riskTier="low"))
        shards["main"].start()
        shards["b"].start()

        # Every governed namespace is one shard's: in the policy's status, and in the webhooks the API server holds.
        wait_for(lambda: shard_counts(policy_status(custom, policy)) == {"main": 2, "b": 2}, 60,
                 "the shards never both wrote their part of the policy's status")
        wait_for(lambda: (sharded(custom, policy) or {}).get("status") == "True", 30, "Sharded never became True")
        assert "Each of the 4 governed namespace(s) is governed by exactly one shard (b 2, main 2)" in \
            sharded(custom, policy)["message"]
        # Each namespace's legacy workload breaks the same rules: each shard finds its two, and the policy sums them.
        wait_for(lambda: {v["namespace"] for v in policy_status(custom, policy).get("violations") or []}
                 == set(labels), 30, "the shards' audits were not summed")
        status = policy_status(custom, policy)
        found = {e["name"]: e["violationCount"] for e in status["shards"]}
        assert found["main"] == found["b"] > 0 and status["violationCount"] == 2 * found["main"]
        assert {v["namespace"] for e in status["shards"] if e["name"] == "b" for v in e["violations"]} == \
            {ns for ns in labels if ns.endswith(("-b1", "-b2"))}
        for namespace, its_labels in labels.items():
            expected = ["b"] if "b" in namespace.rsplit("-", 1)[1] else ["main"]
            wait_for(lambda ns_labels=its_labels, want=expected: picking_configurations(
                api_client, policy, ns_labels) == want, 30, f"{namespace}'s webhooks are not exactly {expected}'s")

        # Admission: each refusal is answered by the namespace's own shard, once.
        before = {name: refusals(shard) for name, shard in shards.items()}
        for namespace in labels:
            refusal = refused(apps, namespace, deployment("naked", {"app": "naked"}))
            assert refusal is not None and "is missing annotation ballast.dev/owner" in refusal.body
        assert {name: refusals(shard) - before[name] for name, shard in shards.items()} == {"main": 2, "b": 2}

        # Ownership passes: each shard reconciles its own namespaces' ServiceOwnerships and no others.
        a_side = {ns for ns in labels if "-a" in ns}
        b_side = set(labels) - a_side
        wait_for(lambda: a_side <= served_namespaces(shards["main"]) and b_side <= served_namespaces(shards["b"]),
                 30, "a shard never reconciled its namespaces' ServiceOwnerships")
        assert not served_namespaces(shards["main"]) & b_side
        assert not served_namespaces(shards["b"]) & set(labels) - b_side

        # Releases: a change in each shard's namespace is released by that shard alone.
        for namespace in (f"{run}-a1", f"{run}-b1"):
            body = deployment("shop", {"app": "shop"}, replicas=3, annotations=OWNERSHIP_ANNOTATIONS,
                              template_annotations=GOOD)
            wait_for(lambda ns=namespace, b=body: created(apps, ns, b), 30, "shop was never admitted")
            wait_for(lambda ns=namespace: (apps.read_namespaced_deployment("shop", ns).status.available_replicas
                                           or 0) == 3, 60, "shop never became available")
            change(apps, namespace, "shop:v2", GOOD)
        for namespace in (f"{run}-a1", f"{run}-b1"):
            assert final_release(custom, namespace)["status"]["phase"] == "Promoted"
        assert {name: promotions(shard) for name, shard in shards.items()} == {"main": 1, "b": 1}

        # A gap: a2 relabelled for a shard that does not run is named, with the fix.
        gap = f"{run}-a2"
        core.patch_namespace(gap, {"metadata": {"labels": {SHARD: "c"}}})
        wait_for(lambda: (sharded(custom, policy) or {}).get("reason") == "NamespacesWithoutShard", 30,
                 "the gap was never told")
        told = sharded(custom, policy)["message"]
        assert f"namespaces {gap} match no running shard's selector" in told and "label them for a shard" in told
        wait_for(lambda: shard_counts(policy_status(custom, policy)) == {"main": 1, "b": 2}, 30,
                 "main still counts the namespace it lost")
        assert picking_configurations(api_client, policy, {**labels[gap], SHARD: "c"}) == []

        # Relabelled into shard b: b takes it over, and the shards partition the namespaces again.
        core.patch_namespace(gap, {"metadata": {"labels": {SHARD: "b"}}})
        wait_for(lambda: (sharded(custom, policy) or {}).get("status") == "True", 30, "Sharded never recovered")
        wait_for(lambda: shard_counts(policy_status(custom, policy)) == {"main": 1, "b": 3}, 30,
                 "b never counted the namespace it gained")
        wait_for(lambda: gap in served_namespaces(shards["b"]), 30, "b never reconciled its new namespace")
        assert picking_configurations(api_client, policy, {**labels[gap], SHARD: "b"}) == ["b"]
    finally:
        with contextlib.suppress(kubernetes.client.ApiException):
            custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy)
        for namespace in labels:
            core.delete_namespace(namespace)
