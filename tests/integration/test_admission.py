"""Admission against the real API server calling the operator's real webhook over TLS."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes
import pytest
import requests
import yaml

from ballast.api.common import GROUP, VERSION
from ballast.api.revisions import template_hash
from tests.harness import wait_for
from tests.harness.kubectl import kubectl
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, ballast, deployment, release_policy, service_ownership

NAKED = deployment("probe", {"app": "probe"})


@pytest.fixture
def make_policy(custom):
    created = []

    def make(namespace: str, selector: dict[str, str] | None = None, **spec) -> str:
        name = f"p-{namespace}-{len(created)}"
        selector = selector or {"ballast.dev/test-ns": namespace}
        custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(name, selector, **spec))
        created.append(name)
        return name

    yield make
    for name in created:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


def refused(apps, namespace: str, body: dict) -> kubernetes.client.ApiException | None:
    """The refusal of a server-side dry-run create, or None when it would be admitted."""
    try:
        apps.create_namespaced_deployment(namespace, body, dry_run="All")
    except kubernetes.client.ApiException as error:
        return error
    return None


def wait_enforced(apps, namespace: str) -> None:
    """Wait until the API server calls the webhook for this namespace (configuration propagates)."""
    wait_for(lambda: refused(apps, namespace, NAKED), 30, f"webhook never enforced in {namespace}")


def with_annotations(body: dict, annotations: dict) -> dict:
    body = copy.deepcopy(body)
    body["metadata"]["annotations"] = {**body["metadata"].get("annotations", {}), **annotations}
    return body


def test_refuses_with_the_exact_message_then_admits_the_fix(operator, apps, make_policy, namespace):
    policy = make_policy(namespace)
    wait_enforced(apps, namespace)
    annotations = {k: v for k, v in OWNERSHIP_ANNOTATIONS.items() if k != "ballast.dev/runbook"}
    body = deployment("checkout", {"app": "checkout"}, annotations=annotations)
    with pytest.raises(kubernetes.client.ApiException) as caught:
        apps.create_namespaced_deployment(namespace, body)
    assert caught.value.status == 403
    assert (
        f"Deployment {namespace}/checkout is missing annotation ballast.dev/runbook: add an http(s) URL of the "
        f"service's runbook (ReleasePolicy {policy}, rule required-annotations)."
    ) in caught.value.body
    apps.create_namespaced_deployment(namespace, with_annotations(body, OWNERSHIP_ANNOTATIONS))
    # Scale-only updates of a workload are never refused, even once it breaks the rules.
    apps.patch_namespaced_deployment_scale("checkout", namespace, {"spec": {"replicas": 3}})

    metrics = requests.get(operator.metrics_url, timeout=5).text
    assert 'ballast_admission_requests_total{decision="refused",kind="Deployment",rule="required-annotations"}' \
        in metrics
    assert 'ballast_admission_duration_seconds_count{kind="Deployment"}' in metrics


def test_update_that_drops_an_annotation_is_refused(operator, apps, make_policy, namespace):
    make_policy(namespace)
    wait_enforced(apps, namespace)
    apps.create_namespaced_deployment(namespace, deployment("checkout", {"app": "checkout"},
                                                            annotations=OWNERSHIP_ANNOTATIONS))
    with pytest.raises(kubernetes.client.ApiException) as caught:
        apps.patch_namespaced_deployment("checkout", namespace,
                                         {"metadata": {"annotations": {"ballast.dev/owner": None}}})
    assert "is missing annotation ballast.dev/owner" in caught.value.body


def test_owner_must_match_the_service_ownership(operator, apps, custom, make_policy, namespace):
    policy = make_policy(namespace)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                           service_ownership("checkout", {"app": "checkout"}, owner="search"))
    wait_enforced(apps, namespace)
    body = deployment("checkout", {"app": "checkout"}, annotations=OWNERSHIP_ANNOTATIONS)
    error = wait_for(lambda: refused(apps, namespace, body), 30, "owner mismatch never refused")
    assert "ServiceOwnership says 'search'" in error.body and f"ReleasePolicy {policy}, rule ownership" in error.body


def test_warn_mode_admits_with_warnings(operator, cluster, apps, make_policy, namespace):
    make_policy(namespace, admission={"mode": "Warn"})

    def warned():
        out = kubectl(cluster.kubeconfig, "create", "deployment", "probe", "-n", namespace, "--image=app:1",
                      "--dry-run=server", check=False)
        return out if "missing annotation ballast.dev/owner" in out.stderr else None

    out = wait_for(warned, 30, "Warn mode never returned warnings")
    assert out.returncode == 0
    assert out.stderr.count("Warning:") == 3


def test_exempt_and_ungoverned_namespaces_pass(operator, apps, core, make_policy, namespace):
    group = {"ballast.dev/test-group": namespace}
    exempt = f"{namespace}-exempt"
    core.patch_namespace(namespace, {"metadata": {"labels": group}})
    core.create_namespace({"metadata": {"name": exempt, "labels": group}})
    try:
        make_policy(namespace, selector=group, admission={"exemptNamespaces": [exempt]})
        wait_enforced(apps, namespace)  # the policy's webhook is live for the group ...
        assert refused(apps, exempt, NAKED) is None  # ... yet the exempt member passes
    finally:
        core.delete_namespace(exempt)
    # A namespace no policy selects is never checked.
    assert refused(apps, "default", NAKED) is None


def test_freeze_refuses_records_the_change_and_break_glass_passes_with_an_event(
        operator, cluster, apps, core, custom, make_policy, namespace):
    now = datetime.now(UTC).replace(microsecond=0)
    window = {"name": "launch", "reason": "launch day", "tiers": ["critical"],
              "start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(hours=2)).isoformat()}
    policy = make_policy(namespace, freezeWindows=[window])
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                           service_ownership("checkout", {"app": "checkout"}, riskTier="critical"))
    body = deployment("checkout", {"app": "checkout"}, annotations=OWNERSHIP_ANNOTATIONS)
    error = wait_for(lambda: refused(apps, namespace, body), 30, "freeze never refused")
    assert "critical tier, frozen by window launch (launch day) until" in error.body
    assert "rule freeze-window" in error.body

    # A real attempt, then its retry: the policy records the change once, for the scoreboard (dry runs not).
    for _ in range(2):
        with pytest.raises(kubernetes.client.ApiException) as attempt:
            apps.create_namespaced_deployment(namespace, body)
        assert attempt.value.status == 403

    def recorded():
        status = custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy).get("status") or {}
        return status.get("freezeRefusals")

    (refusal,) = wait_for(recorded, 30, "the policy never recorded the refused change")
    assert {k: refusal[k] for k in ("kind", "namespace", "name", "team", "tier", "window", "username")} == {
        "kind": "Deployment", "namespace": namespace, "name": "checkout", "team": "payments", "tier": "critical",
        "window": "launch", "username": "admin"}
    board = ballast(cluster.kubeconfig, "scoreboard", "-n", namespace, "-o", "json")
    assert board.returncode == 0, board.stderr
    (row,) = json.loads(board.stdout)
    assert (row["team"], row["tier"], row["blocked_by_freeze"], row["releases"]) == ("payments", "critical", 1, 0)

    apps.create_namespaced_deployment(namespace, with_annotations(body, {"ballast.dev/emergency": "INC-4711"}))

    def break_glass_event():
        events = core.list_namespaced_event(namespace).items
        return [e for e in events if e.reason == "BreakGlass"]

    (event,) = wait_for(break_glass_event, 30, "no BreakGlass event")
    assert event.type == "Warning"
    assert event.message == (f"admin let Deployment {namespace}/checkout through freeze window launch with "
                             "ballast.dev/emergency: INC-4711")


def test_alerts_must_exist_in_prometheus(operator, local_cluster, apps, make_policy, namespace):
    local_cluster.write_prometheus_rules(f"alerts-{namespace}", f"""
groups:
  - name: {namespace}
    rules:
      - alert: CheckoutHighErrorRate
        expr: vector(0) > 1
""")
    make_policy(namespace, admission={"verifyAlertsExist": True})
    wait_enforced(apps, namespace)
    known = deployment("known", {"app": "known"}, annotations=OWNERSHIP_ANNOTATIONS)
    unknown = deployment("unknown", {"app": "unknown"},
                         annotations={**OWNERSHIP_ANNOTATIONS, "ballast.dev/alerts": "CheckoutHighErrorRate,NoSuch"})
    # Until the operator has read the rules, the check only warns: wait for the refusal that proves it has.
    error = wait_for(lambda: refused(apps, namespace, unknown), 30, "an alert Prometheus lacks was never refused")
    assert "NoSuch" in error.body and "rule alerts-exist" in error.body
    assert refused(apps, namespace, known) is None


def test_alert_check_degrades_to_a_warning_while_prometheus_is_down(operator, local_cluster, cluster, apps,
                                                                   make_policy, namespace):
    make_policy(namespace, admission={"verifyAlertsExist": True})
    wait_enforced(apps, namespace)
    local_cluster.stop_prometheus()
    try:
        # An alert nobody defined is admitted (with a warning) rather than refused: an outage of
        # Prometheus must never block deploys.
        probe = deployment("probe", {"app": "probe"},
                           annotations={**OWNERSHIP_ANNOTATIONS, "ballast.dev/alerts": "NoSuchAlert"})
        manifest = Path(cluster.state_dir) / f"probe-{namespace}.yaml"
        manifest.write_text(yaml.safe_dump({**probe, "metadata": {**probe["metadata"], "namespace": namespace}}))

        def admitted_with_warning():
            out = kubectl(cluster.kubeconfig, "apply", "-f", str(manifest), "--dry-run=server", check=False)
            return out if out.returncode == 0 and "Prometheus is unreachable" in out.stderr else None

        out = wait_for(admitted_with_warning, 30, "the alert check never degraded to a warning")
        assert "NoSuchAlert" in out.stderr and "rule alerts-exist" in out.stderr
    finally:
        local_cluster.start_prometheus()


def test_policy_status_audits_workloads_that_predate_it(operator, apps, custom, make_policy, namespace):
    apps.create_namespaced_deployment(namespace, deployment("legacy", {"app": "legacy"}))
    policy = make_policy(namespace, admission={"mode": "Audit"})

    def audited():
        status = custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy).get("status") or {}
        return status if status.get("violationCount") == 3 else None

    status = wait_for(audited, 30, "the audit never listed the legacy workload")
    assert {v["name"] for v in status["violations"]} == {"legacy"}
    assert {v["rule"] for v in status["violations"]} == {"required-annotations"}


def test_api_server_refuses_steps_out_of_order(operator, custom, crds, namespace):
    body = release_policy(f"bad-{namespace}", {"team": "x"}, tiers={"high": {"steps": [50, 10]}})

    def refusal():
        try:
            custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", body, dry_run="All")
        except kubernetes.client.ApiException as error:
            return error
        return None

    error = wait_for(refusal, 30, "steps [50, 10] were never refused")
    assert "strictly increasing" in error.body


def test_failure_policy_when_the_operator_is_down(operator, apps, core, make_policy, namespace):
    enforce_ns, warn_ns = namespace, f"{namespace}-warn"
    core.create_namespace({"metadata": {"name": warn_ns, "labels": {"ballast.dev/test-ns": warn_ns}}})
    try:
        make_policy(enforce_ns)
        warn_policy = make_policy(warn_ns, admission={"mode": "Warn"})
        wait_enforced(apps, enforce_ns)
        registration = kubernetes.client.AdmissionregistrationV1Api(apps.api_client)

        def warn_entry():
            webhooks = registration.read_validating_webhook_configuration("ballast.dev").webhooks
            return [w for w in webhooks if w.name == f"{warn_policy}.workloads.ballast.dev"]

        (entry,) = wait_for(warn_entry, 30, "the Warn policy never got its webhook entry")
        assert entry.failure_policy == "Ignore"
        operator.stop()
        try:
            error = refused(apps, enforce_ns, with_annotations(NAKED, OWNERSHIP_ANNOTATIONS))
            assert error is not None and "failed calling webhook" in error.body
            assert refused(apps, warn_ns, NAKED) is None
        finally:
            operator.start()
    finally:
        core.delete_namespace(warn_ns)


def test_statefulsets_are_checked_too(operator, apps, make_policy, namespace):
    make_policy(namespace)
    wait_enforced(apps, namespace)
    labels = {"app": "db"}
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "labels": labels},
        "spec": {"serviceName": "db", "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}},
    }
    with pytest.raises(kubernetes.client.ApiException) as caught:
        apps.create_namespaced_stateful_set(namespace, statefulset, dry_run="All")
    assert f"StatefulSet {namespace}/db is missing annotation ballast.dev/owner" in caught.value.body
    apps.create_namespaced_stateful_set(namespace, with_annotations(statefulset, OWNERSHIP_ANNOTATIONS),
                                        dry_run="All")


# -- guardrails a person cannot talk past (issue 9, section B) ---------------------------------------------

def _releases(custom, namespace: str) -> list[dict]:
    return custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "releases")["items"]


def _raw(response) -> dict:
    return json.loads(response.data)


def wait_mutating(apps, namespace: str) -> None:
    """Wait until the API server also calls the mutating webhook for this namespace (its own configuration)."""
    probe = with_annotations(deployment("probe", {"app": "probe"}, annotations=OWNERSHIP_ANNOTATIONS),
                             {"ballast.dev/pending-revision": "probe"})

    def stripped():
        created = apps.create_namespaced_deployment(namespace, probe, dry_run="All")
        return "ballast.dev/pending-revision" not in (created.metadata.annotations or {})

    wait_for(stripped, 30, f"the mutating webhook never took over {namespace}")


def _governed_shop(apps, custom, make_policy, namespace, tier="critical", **policy) -> dict:
    """A governed namespace with a ServiceOwnership of ``tier`` and its admitted Deployment 'shop' (raw JSON)."""
    make_policy(namespace, **policy)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                           service_ownership("shop", {"app": "shop"}, riskTier=tier))
    wait_enforced(apps, namespace)
    wait_mutating(apps, namespace)
    body = deployment("shop", {"app": "shop"}, annotations=OWNERSHIP_ANNOTATIONS)
    wait_for(lambda: refused(apps, namespace, body) is None, 30, "shop was never admissible")
    return _raw(apps.create_namespaced_deployment(namespace, body, _preload_content=False))


def _new_image(image: str) -> dict:
    return {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}


def test_only_the_operator_records_releases_and_people_cannot_rewrite_them(
        operator, cluster, apps, custom, make_policy, namespace):
    _governed_shop(apps, custom, make_policy, namespace)
    forged = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Release", "metadata": {"name": "forged"},
              "spec": {"deployment": "shop", "toRevision": "0123456789abcdef", "tier": "low"}}

    def creation_refused():
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "releases", forged, dry_run="All")
        except kubernetes.client.ApiException as error:
            return error
        return None

    error = wait_for(creation_refused, 30, "a person's Release was never refused")
    assert error.status == 403
    assert f"Release {namespace}/forged cannot be created by admin: Releases are recorded by Ballast's operator" \
        in error.body

    apps.patch_namespaced_deployment("shop", namespace, _new_image("app:2"))  # by admin
    (release,) = wait_for(lambda: [r for r in _releases(custom, namespace)
                                   if (r.get("status") or {}).get("phase") == "AwaitingApproval"],
                          60, "the critical release never awaited approval")
    name = release["metadata"]["name"]
    assert release["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "ballast"

    def attempt(patch):
        with pytest.raises(kubernetes.client.ApiException) as caught:
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "releases", name, patch)
        assert caught.value.status == 403
        return caught.value.body

    # The author cannot name someone else as the author, nor lower the tier to skip approval.
    assert f"Release {namespace}/{name}'s spec can only be written by Ballast's operator, not by admin" in attempt(
        {"spec": {"changedBy": {"username": "alice"}}})
    assert "spec can only be written by Ballast's operator" in attempt({"spec": {"tier": "low"}})
    assert "labels can only be written" in attempt({"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}})
    # ... nor approve or skip in the same request that rewrites the record: the stored author and tier decide.
    assert "spec can only be written" in attempt({"metadata": {"annotations": {"ballast.dev/approve": "me"}},
                                                  "spec": {"changedBy": {"username": "alice"}}})
    assert "who cannot also approve it (four eyes)" in attempt(
        {"metadata": {"annotations": {"ballast.dev/approve": "1"}}})
    assert "is critical tier, whose policy does not allow skipping steps" in attempt(
        {"metadata": {"annotations": {"ballast.dev/promote": "1"}}})
    # Nor jump to the last step by writing the status the release engine plans from.
    with pytest.raises(kubernetes.client.ApiException) as caught:
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "releases", name,
                                                     {"status": {"currentStep": 3}})
    assert caught.value.status == 403 and "status is Ballast's record of what it decided" in caught.value.body
    approved = ballast(cluster.user_kubeconfigs["alice"], "approve", name, "-n", namespace)
    assert approved.returncode == 0, approved.stderr

    registration = kubernetes.client.AdmissionregistrationV1Api(apps.api_client)
    (entry,) = [w for w in registration.read_validating_webhook_configuration("ballast.dev").webhooks
                if w.name == "releases.ballast.dev"]
    assert (entry.failure_policy, entry.rules[0].operations, entry.rules[0].resources) == (
        "Fail", ["CREATE", "UPDATE"], ["releases", "releases/status"])


def test_a_release_the_operator_did_not_create_is_neither_adopted_nor_acted_on(
        operator, cluster, apps, custom, make_policy, namespace):
    shop = _governed_shop(apps, custom, make_policy, namespace, tier="low")
    change = _new_image("app:2")
    template = _raw(apps.patch_namespaced_deployment("shop", namespace, change, dry_run="All",
                                                     _preload_content=False))["spec"]["template"]
    revision = template_hash(template)
    # A Release made past the webhook (here: with the operator's own credentials, as when the webhook was
    # down), unfinished, for exactly the change about to be made, under the name the operator would use.
    squatter = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Release",
        "metadata": {"name": f"shop-{revision[:10]}", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop", "uid": shop["metadata"]["uid"]}]},
        "spec": {"deployment": "shop", "toRevision": revision, "tier": "low", "steps": [100],
                 "changedBy": {"username": "someone-else"}},
    }
    as_operator = kubernetes.config.new_client_from_config(config_file=cluster.user_kubeconfigs["ballast-operator"])
    kubernetes.client.CustomObjectsApi(as_operator).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "releases", squatter)

    apps.patch_namespaced_deployment("shop", namespace, change)
    own = wait_for(lambda: [r for r in _releases(custom, namespace) if r["metadata"]["name"] != squatter[
        "metadata"]["name"] and r.get("status")], 60, "the operator never recorded the change itself")
    assert [(r["metadata"]["name"], r["spec"]["changedBy"]["username"]) for r in own] == [
        (f"shop-{revision[:10]}-2", "admin")]
    foreign = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "releases", squatter["metadata"]["name"])
    assert "status" not in foreign  # never acted on, while the operator's own Release of the same change was


def test_people_cannot_pass_a_workload_off_as_a_canary(operator, apps, custom, make_policy, namespace):
    policy = make_policy(namespace)
    wait_enforced(apps, namespace)
    labels = {"app": "shop", "ballast.dev/track": "canary"}
    body = deployment("shop-canary", labels, annotations=OWNERSHIP_ANNOTATIONS)
    error = refused(apps, namespace, body)
    assert error is not None and error.status == 403
    assert (f"Deployment {namespace}/shop-canary carries label ballast.dev/track=canary, which marks the canaries "
            "Ballast's releases run and exempts them from its checks: remove the label (Ballast labels its own "
            f"canaries) (ReleasePolicy {policy}, rule canary-track).") in error.body


def test_a_labelled_canary_no_release_owns_is_still_held_for_a_release(operator, apps, custom, make_policy,
                                                                        namespace):
    make_policy(namespace, admission={"mode": "Warn"})  # Warn admits the label: the pause must still hold
    body = deployment("shop", {"app": "shop", "ballast.dev/track": "canary"}, annotations=OWNERSHIP_ANNOTATIONS)

    def held():
        try:
            apps.create_namespaced_deployment(namespace, body)
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
        return apps.patch_namespaced_deployment("shop", namespace, _new_image(f"app:{time.monotonic()}"),
                                                dry_run="All").spec.paused

    assert wait_for(held, 30, "a self-labelled canary's template change was never held")


def test_the_audit_sees_a_workload_labelled_as_a_canary(operator, apps, custom, make_policy, namespace):
    apps.create_namespaced_deployment(namespace, deployment("sneaky", {"app": "sneaky", "ballast.dev/track": "canary"}))
    policy = make_policy(namespace, admission={"mode": "Audit"})

    def audited():
        status = custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy).get("status") or {}
        return {(v["name"], v["rule"]) for v in status.get("violations") or []}

    rules = wait_for(audited, 30, "the audit skipped a workload that only claims to be a canary")
    assert rules == {("sneaky", "canary-track"), ("sneaky", "required-annotations")}


def test_people_cannot_forge_or_drop_what_only_the_webhook_writes(operator, apps, make_policy, namespace):
    make_policy(namespace)
    wait_enforced(apps, namespace)
    wait_mutating(apps, namespace)
    forged = {"ballast.dev/changed-by": json.dumps({"username": "alice"}), "ballast.dev/pending-revision": "x"}
    body = with_annotations(deployment("shop", {"app": "shop"}, annotations=OWNERSHIP_ANNOTATIONS), forged)
    created = apps.create_namespaced_deployment(namespace, body)
    assert not set(forged) & set(created.metadata.annotations)
    assert not created.spec.paused
    patched = apps.patch_namespaced_deployment("shop", namespace, {"metadata": {"annotations": forged}})
    assert not set(forged) & set(patched.metadata.annotations)  # a metadata-only update cannot add them either


def test_the_rolled_back_record_cannot_be_dropped_to_reapply_a_bad_template(operator, cluster, apps, make_policy,
                                                                             namespace):
    make_policy(namespace)
    wait_enforced(apps, namespace)
    wait_mutating(apps, namespace)
    body = deployment("shop", {"app": "shop"}, annotations=OWNERSHIP_ANNOTATIONS)
    apps.create_namespaced_deployment(namespace, body)
    bad = _new_image("app:bad")
    revision = template_hash(_raw(apps.patch_namespaced_deployment("shop", namespace, bad, dry_run="All",
                                                                   _preload_content=False))["spec"]["template"])
    # What the release engine writes when it rolls `bad` back (written here with its credentials).
    record = json.dumps({revision: datetime.now(UTC).isoformat()})
    as_operator = kubernetes.config.new_client_from_config(config_file=cluster.user_kubeconfigs["ballast-operator"])
    kubernetes.client.AppsV1Api(as_operator).patch_namespaced_deployment(
        "shop", namespace, {"metadata": {"annotations": {"ballast.dev/rolled-back-revisions": record}}})

    dropped = apps.patch_namespaced_deployment(
        "shop", namespace, {"metadata": {"annotations": {"ballast.dev/rolled-back-revisions": None}}})
    assert dropped.metadata.annotations["ballast.dev/rolled-back-revisions"] == record
    with pytest.raises(kubernetes.client.ApiException) as caught:
        apps.patch_namespaced_deployment("shop", namespace, bad)
    assert "which Ballast rolled back" in caught.value.body and "rule rolled-back-revision" in caught.value.body


def test_break_glass_counts_only_in_the_request_that_sets_it_and_is_always_recorded(
        operator, apps, core, custom, make_policy, namespace):
    _governed_shop(apps, custom, make_policy, namespace)
    apps.patch_namespaced_deployment("shop", namespace, {**_new_image("app:2"), "metadata": {
        "annotations": {"ballast.dev/emergency": "INC-7"}}})

    def release_of(image):
        found = [r for r in _releases(custom, namespace) if r["spec"]["toImages"] == [image]]
        return found[0] if found else None

    assert wait_for(lambda: release_of("app:2"), 60, "no release of app:2")["spec"]["emergency"] == "INC-7"
    events = wait_for(lambda: [e for e in core.list_namespaced_event(namespace).items if e.reason == "BreakGlass"],
                      30, "break-glass outside a freeze was never recorded")
    assert events[0].message == (f"admin set ballast.dev/emergency on Deployment {namespace}/shop: INC-7 (no freeze "
                                 "window is open; a Deployment's release records the reason, which lets it past a "
                                 "spent error budget)")
    # The next change leaves the annotation as it was: it is no emergency, whatever the annotation still says.
    apps.patch_namespaced_deployment("shop", namespace, _new_image("app:3"))
    assert "emergency" not in wait_for(lambda: release_of("app:3"), 60, "no release of app:3")["spec"]


def test_leaving_a_critical_ownership_is_frozen_like_any_change(operator, apps, core, custom, make_policy,
                                                                namespace):
    now = datetime.now(UTC).replace(microsecond=0)
    _governed_shop(apps, custom, make_policy, namespace)
    policy = f"p-{namespace}-0"
    custom.patch_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy, {"spec": {"freezeWindows": [
        {"name": "launch", "tiers": ["critical"], "start": (now - timedelta(hours=1)).isoformat(),
         "end": (now + timedelta(hours=2)).isoformat()}]}})
    unlabel = {"metadata": {"labels": {"app": "elsewhere"}}}

    def refusal():
        try:
            apps.patch_namespaced_deployment("shop", namespace, unlabel, dry_run="All")
        except kubernetes.client.ApiException as error:
            return error
        return None

    error = wait_for(refusal, 30, "dropping the ServiceOwnership's label was never frozen")
    assert f"Deployment {namespace}/shop is critical tier, frozen by window launch" in error.body

    def lower(annotations=None):
        patch = {"spec": {"riskTier": "low"}, "metadata": {"annotations": annotations or {}}}
        return custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop", patch)

    with pytest.raises(kubernetes.client.ApiException) as caught:
        lower()
    assert f"ServiceOwnership {namespace}/shop is critical tier, frozen by window launch" in caught.value.body
    assert lower({"ballast.dev/emergency": "INC-8"})["spec"]["riskTier"] == "low"
    (event,) = wait_for(lambda: [e for e in core.list_namespaced_event(namespace).items if e.reason == "BreakGlass"],
                        30, "the ServiceOwnership's break-glass was never recorded")
    assert event.message.startswith(f"admin let ServiceOwnership {namespace}/shop through freeze window launch")


def test_a_label_dropped_with_the_change_keeps_its_release_in_the_old_tier(operator, apps, custom, make_policy,
                                                                           namespace):
    _governed_shop(apps, custom, make_policy, namespace)
    _, _, headers = apps.patch_namespaced_deployment_with_http_info(
        "shop", namespace, {**_new_image("app:2"), "metadata": {"labels": {"app": "elsewhere"}}})
    assert "rule tier-downgrade" in headers.get("Warning", "")  # admitted outside a freeze, with a warning
    (release,) = wait_for(lambda: [r for r in _releases(custom, namespace) if r.get("status")], 60,
                          "the change was never recorded")
    assert release["spec"]["tier"] == "critical"
    assert wait_for(lambda: custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "releases", release[
        "metadata"]["name"])["status"]["phase"] == "AwaitingApproval", 30, "the release never awaited approval")


def test_the_namespace_comes_from_the_request_not_the_object(operator, apps, make_policy, namespace):
    make_policy(namespace)
    wait_enforced(apps, namespace)
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "u", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
        "namespace": namespace, "operation": "CREATE", "userInfo": {"username": "mallory"},
        "object": {**deployment("blank", {"app": "blank"}), "metadata": {"name": "blank", "namespace": ""}}}}
    response = requests.post(f"{operator.webhook_url}/workloads", json=review, timeout=10,
                             verify=str(operator.cert_dir / "tls.crt"))
    assert response.json()["response"]["allowed"] is False
    assert f"Deployment {namespace}/blank is missing annotation ballast.dev/owner" in response.text
