"""A policy's violations as PolicyReports (wgpolicyk8s.io/v1alpha2), on the real API server with the real operator:
skipped with one log line while the CRD is missing, then created, updated and removed in step with the audit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import kubernetes
import pytest
import yaml

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy

CRD = yaml.safe_load((Path(__file__).parent / "data" / "policyreport-crd.yaml").read_text())
REPORTS = ("wgpolicyk8s.io", "v1alpha2", "policyreports")
ABSENT = "Ballast publishes no PolicyReports: the CRD is not installed"
BROKEN = {**OWNERSHIP_ANNOTATIONS, "ballast.dev/runbook": "ask-around"}
"""One violation per workload: the runbook is not a URL."""


def crd_gone(ext: kubernetes.client.ApiextensionsV1Api) -> bool:
    try:
        ext.read_custom_resource_definition(CRD["metadata"]["name"])
    except kubernetes.client.ApiException as error:
        return error.status == 404
    return False


@pytest.fixture(scope="module")
def report_crd_absent(api_client):
    """No PolicyReport CRD at first (as on a cluster without Kyverno); removed again afterwards."""
    ext = kubernetes.client.ApiextensionsV1Api(api_client)
    if not crd_gone(ext):
        ext.delete_custom_resource_definition(CRD["metadata"]["name"])
        wait_for(lambda: crd_gone(ext), 60, "the PolicyReport CRD was never deleted")
    yield ext
    if not crd_gone(ext):
        ext.delete_custom_resource_definition(CRD["metadata"]["name"])


def install_report_crd(ext: kubernetes.client.ApiextensionsV1Api) -> None:
    ext.create_custom_resource_definition(CRD)

    def served():
        conditions = ext.read_custom_resource_definition(CRD["metadata"]["name"]).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conditions)
    wait_for(served, 30, "the PolicyReport CRD never became Established")


def report(custom, namespace):
    try:
        return custom.get_namespaced_custom_object(*REPORTS[:2], namespace, REPORTS[2], "ballast")
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise


def failing(report_body) -> list[str]:
    return sorted(r["resources"][0]["name"] for r in report_body["results"]) if report_body else []


def test_policy_reports_follow_the_audit(report_crd_absent, operator, custom, apps, namespace):
    ext = report_crd_absent
    logged_before = len(operator.log_path.read_text())
    name = f"reports-{namespace}"
    custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
        name, {"ballast.dev/test-ns": namespace}, admission={"mode": "Audit"}))
    try:
        def violations(count):
            def check():
                status = custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", name).get("status") or {}
                return status.get("violationCount") == count
            return check

        # Without the CRD: the status is written pass after pass, the operator says why once and stays up.
        for i, app in enumerate(["cart", "ledger", "search"]):
            apps.create_namespaced_deployment(namespace, deployment(app, {"app": app}, annotations=BROKEN))
            wait_for(violations(i + 1), 60, f"the status never counted {i + 1} violations")
        assert operator.ready()
        log = operator.log_path.read_text()
        # Said once per process (perhaps before this test): not again on each of the passes above.
        assert ABSENT in log and log[logged_before:].count(ABSENT) <= 1

        # With it: the next pass (any change in the namespace) publishes the report.
        install_report_crd(ext)
        apps.create_namespaced_deployment(namespace, deployment(
            "compliant", {"app": "compliant"}, annotations=OWNERSHIP_ANNOTATIONS))
        published = wait_for(lambda: report(custom, namespace), 60, "no PolicyReport was published")
        assert failing(published) == ["cart", "ledger", "search"]
        assert published["summary"]["fail"] == 3
        assert published["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "ballast",
                                                   "ballast.dev/policy": name}
        policy = custom.get_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)
        [owner] = published["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("ReleasePolicy", name, policy["metadata"]["uid"])
        first = {r["resources"][0]["name"]: r for r in published["results"]}
        assert first["cart"]["policy"] == name and first["cart"]["result"] == "fail"
        assert "not a URL" in first["cart"]["message"]
        assert "available again" in operator.log_path.read_text()

        # Fixed: the workload leaves the report, the others keep the time they were first seen.
        apps.patch_namespaced_deployment("cart", namespace, {"metadata": {"annotations": OWNERSHIP_ANNOTATIONS}})
        fixed = wait_for(lambda: (r := report(custom, namespace)) and failing(r) == ["ledger", "search"] and r,
                         60, "the fixed workload never left the report")
        assert fixed["summary"]["fail"] == 2
        assert {r["resources"][0]["name"]: r["timestamp"] for r in fixed["results"]} == {
            n: first[n]["timestamp"] for n in ("ledger", "search")}

        # No violation left: no report.
        apps.delete_namespaced_deployment("ledger", namespace)
        apps.delete_namespaced_deployment("search", namespace)
        wait_for(lambda: report(custom, namespace) is None, 60, "the report outlived the last violation")

        # A new one brings it back; deleting the policy takes it away.
        apps.create_namespaced_deployment(namespace, deployment("late", {"app": "late"}, annotations=BROKEN))
        wait_for(lambda: failing(report(custom, namespace)) == ["late"], 60, "the report never came back")
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)
    wait_for(lambda: report(custom, namespace) is None, 60, "the report outlived its policy")


def test_the_charts_service_account_may_keep_reports_and_read_receivers_secrets_only_at_home(
        cluster, api_client, crds):
    """The chart's RBAC, asked of the real authorizer: PolicyReports anywhere; Secrets only in its namespace."""
    from tests.integration.test_chart import NAMESPACE, helm, install  # skips without the Helm library

    config = install(cluster, api_client, {})
    try:
        authorization = kubernetes.client.AuthorizationV1Api(api_client)
        user = f"system:serviceaccount:{NAMESPACE}:ballast"

        def allowed(verb, resource, namespace, group=""):
            review = authorization.create_subject_access_review({"spec": {"user": user, "resourceAttributes": {
                "group": group, "resource": resource, "verb": verb, "namespace": namespace}}})
            return review.status.allowed

        for verb in ("list", "create", "update", "delete"):
            assert allowed(verb, "policyreports", "shop", group="wgpolicyk8s.io"), verb
        assert not allowed("patch", "policyreports", "shop", group="wgpolicyk8s.io")
        assert allowed("get", "secrets", NAMESPACE)
        assert not allowed("get", "secrets", "shop")
        assert not allowed("list", "secrets", NAMESPACE)
    finally:
        asyncio.run(helm.Uninstall(config).run("ballast", wait=False))
