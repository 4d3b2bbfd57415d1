"""The Helm chart, linted and installed with the real Helm v4 library into the real API server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import filecmp
from pathlib import Path

import kubernetes
import kubernetes.dynamic
import pytest
import yaml

from ballast.api.common import GROUP, VERSION
from ballast.cli.operator import run
from tests.harness import wait_for
from tests.harness.kubectl import kubectl
from tests.harness.operator import OperatorProcess
from tests.integration.helmlib import helm_or_skip
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, release_policy
from tests.integration.releasing import FAST_TIER, FINAL, GOOD, change, release_in
from tests.integration.test_admission import refused

helm = helm_or_skip()

CHART = Path(__file__).resolve().parents[2] / "charts" / "ballast"


def test_chart_crds_are_the_generated_ones():
    generated = sorted(p.name for p in (CHART.parents[1] / "crds").glob("*.yaml"))
    assert sorted(p.name for p in (CHART / "crds").glob("*.yaml")) == generated
    _, mismatch, errors = filecmp.cmpfiles(CHART / "crds", CHART.parents[1] / "crds", generated, shallow=False)
    assert mismatch == [] and errors == [], "charts/ballast/crds differs from crds/: run `make manifests`"


def test_lint():
    result = asyncio.run(helm.Lint(helm.Configuration()).run(str(CHART)))
    errors = [m for m in result.get("Messages") or [] if m.get("Severity", 0) >= 3]  # 3 = error in Helm
    assert not result.get("Errors") and not errors, result


NAMESPACE = "ballast-system"


def values_here(cluster, values: dict) -> dict:
    """The chart's values in these tests: the cluster's Prometheus, and no uninstall hook, since no node runs
    its Job here (test_chart_real.py runs the chart, hook included, on the real node)."""
    return {"prometheusUrl": cluster.prometheus_url, "webhook": {"removeOnUninstall": False}, **values}


def install(cluster, api_client, values: dict) -> helm.Configuration:
    """`helm install ballast charts/ballast -n ballast-system` with these values; returns the config to uninstall."""
    try:
        kubernetes.client.CoreV1Api(api_client).create_namespace({"metadata": {"name": NAMESPACE}})
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
    config = helm.Configuration(namespace=NAMESPACE, kubeconfig=cluster.kubeconfig)
    asyncio.run(helm.Install(config).run("ballast", str(CHART), values=values_here(cluster, values), wait=False,
                                         timeout=60))
    return config


def test_install_creates_every_object(cluster, api_client, crds):
    namespace = NAMESPACE
    core = kubernetes.client.CoreV1Api(api_client)
    kubectl(cluster.kubeconfig, "apply", "-f", str(Path(__file__).parent / "data" / "monitoring-crds.yaml"))
    kubectl(cluster.kubeconfig, "wait", "--for=condition=Established", "--timeout=30s",
            "crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
    config = install(cluster, api_client, {
        "metrics": {"serviceMonitor": {"enabled": True}},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus"}},
        "grafanaDashboard": {"enabled": True},
        "defaultPolicy": {"enabled": True, "mode": "Audit",
                          "namespaceSelector": {"matchLabels": {"ballast.dev/chart-test": "yes"}}}})
    try:
        apps, rbac = kubernetes.client.AppsV1Api(api_client), kubernetes.client.RbacAuthorizationV1Api(api_client)
        deployment = apps.read_namespaced_deployment("ballast", namespace)
        container = deployment.spec.template.spec.containers[0]
        assert container.security_context.read_only_root_filesystem is True
        assert deployment.spec.template.spec.security_context.run_as_non_root is True
        assert f"--webhook-service={namespace}/ballast-webhook" in container.args
        assert {"--leader-election", "--leader-election-id=ballast"} <= set(container.args)
        run.make_context("run", list(container.args))  # every argument is one `ballast operator run` takes
        assert deployment.spec.replicas == 2
        assert container.liveness_probe.http_get.path == "/healthz"
        assert container.readiness_probe.http_get.path == "/readyz"
        assert container.env[0].value_from.field_ref.field_path == "metadata.name"
        assert deployment.metadata.labels["app.kubernetes.io/part-of"] == "ballast"
        assert core.read_namespaced_service_account("ballast", namespace)
        assert core.read_namespaced_service("ballast", namespace).spec.ports[0].name == "metrics"
        webhook = core.read_namespaced_service("ballast-webhook", namespace)
        assert webhook.spec.ports[0].port == 443 and "ballast.dev/leader" not in webhook.spec.selector
        budgets = kubernetes.dynamic.DynamicClient(api_client).resources.get(  # policy/v1beta1 on 1.20
            api_version="policy/v1beta1", kind="PodDisruptionBudget")
        assert budgets.get(name="ballast", namespace=namespace).spec.maxUnavailable == 1
        assert rbac.read_namespaced_role("ballast-leader-election", namespace).rules[1].resource_names == ["ballast"]
        secret = core.read_namespaced_secret("ballast-webhook-tls", namespace)
        assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret.data)
        assert core.read_namespaced_config_map("ballast-dashboard", namespace).data["ballast.json"].startswith("{")
        role = rbac.read_cluster_role("ballast")
        assert any("releases" in (rule.resources or []) and "create" in rule.verbs for rule in role.rules)
        webhook_rules = [r for r in role.rules if "validatingwebhookconfigurations" in (r.resources or [])]
        assert [(r.resource_names, sorted(r.verbs)) for r in webhook_rules] == [
            (["ballast.dev"], ["delete", "get", "update"]), (None, ["create"])]
        assert rbac.read_cluster_role_binding("ballast").subjects[0].name == "ballast"
        monitoring = kubernetes.client.CustomObjectsApi(api_client)
        monitor = monitoring.get_namespaced_custom_object("monitoring.coreos.com", "v1", namespace, "servicemonitors",
                                                          "ballast")
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
        rule = monitoring.get_namespaced_custom_object("monitoring.coreos.com", "v1", namespace, "prometheusrules",
                                                       "ballast")
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus"
        assert rule["spec"] == yaml.safe_load((CHART / "rules" / "ballast.rules.yaml").read_text())
        policy = kubernetes.client.CustomObjectsApi(api_client).get_cluster_custom_object(
            "ballast.dev", "v1alpha1", "releasepolicies", "default")
        assert policy["spec"]["admission"] == {"mode": "Audit", "exemptNamespaces": [namespace]}
    finally:
        asyncio.run(helm.Uninstall(config).run("ballast", wait=False))


def test_a_shard_acts_under_webhook_configurations_of_its_own_name(cluster, api_client, crds, tmp_path):
    with pytest.raises(helm.HelmError, match=r"shard\.selector: a shard needs a namespace selector"):
        install(cluster, api_client, {"shard": {"name": "b"}})
    config = install(cluster, api_client, {"shard": {"name": "b", "selector": "ballast.dev/shard=b"}})
    try:
        apps, rbac = kubernetes.client.AppsV1Api(api_client), kubernetes.client.RbacAuthorizationV1Api(api_client)
        container = apps.read_namespaced_deployment("ballast", NAMESPACE).spec.template.spec.containers[0]
        assert {"--shard=b", "--shard-selector=ballast.dev/shard=b", "--leader-election"} <= set(container.args)
        run.make_context("run", list(container.args))  # the operator takes them, leader election included
        webhook_rules = [r for r in rbac.read_cluster_role("ballast").rules
                         if "validatingwebhookconfigurations" in (r.resources or [])]
        assert webhook_rules[0].resource_names == ["b.ballast.dev"]  # its own, never the other shards'
        assert any("leases" in (r.resources or []) and r.verbs == ["get"] and not r.resource_names
                   for r in rbac.read_cluster_role("ballast").rules)  # the other shards' Leases, wherever they are
        coordination = kubernetes.client.CoordinationV1Api(api_client)
        other = coordination.create_namespaced_lease("default", {"metadata": {"generateName": "shard-main-"},
                                                                 "spec": {"holderIdentity": "main-0"}})
        try:
            as_operator = kubernetes.client.CoordinationV1Api(kubernetes.config.new_client_from_config(
                config_file=service_account_kubeconfig(cluster, api_client, NAMESPACE, "ballast", tmp_path / "kc")))
            assert as_operator.read_namespaced_lease(other.metadata.name, "default").spec.holder_identity == "main-0"
        finally:
            coordination.delete_namespaced_lease(other.metadata.name, "default")
    finally:
        asyncio.run(helm.Uninstall(config).run("ballast", wait=False))


def test_upgrade_keeps_the_webhook_certificate(cluster, api_client, crds):
    """`helm upgrade` once made a new CA, so the API server distrusted the webhook until the caBundle caught up."""
    core = kubernetes.client.CoreV1Api(api_client)
    config = install(cluster, api_client, {})
    try:
        before = core.read_namespaced_secret("ballast-webhook-tls", NAMESPACE).data
        asyncio.run(helm.Upgrade(config).run("ballast", str(CHART), values=values_here(cluster, {"logFormat": "plain"}),
                                             wait=False, timeout=60))
        deployment = kubernetes.client.AppsV1Api(api_client).read_namespaced_deployment("ballast", NAMESPACE)
        assert "--log-format=plain" in deployment.spec.template.spec.containers[0].args  # the upgrade happened
        after = core.read_namespaced_secret("ballast-webhook-tls", NAMESPACE).data
        assert {key: after[key] for key in ("ca.crt", "tls.crt", "tls.key")} == \
            {key: before[key] for key in ("ca.crt", "tls.crt", "tls.key")}
    finally:
        asyncio.run(helm.Uninstall(config).run("ballast", wait=False))


def service_account_kubeconfig(cluster, api_client, namespace: str, name: str, path: Path) -> str:
    """A kubeconfig that authenticates as the ServiceAccount (its token Secret, as Kubernetes 1.20 makes)."""
    core = kubernetes.client.CoreV1Api(api_client)

    def token() -> str | None:
        account = core.read_namespaced_service_account(name, namespace)
        if not account.secrets:
            return None
        secret = core.read_namespaced_secret(account.secrets[0].name, namespace)
        return base64.b64decode(secret.data["token"]).decode()

    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config["users"] = [{"name": name, "user": {"token": wait_for(token, 30, "no ServiceAccount token")}}]
    config["contexts"][0]["context"]["user"] = name
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_operator_runs_on_the_charts_permissions_and_fails_without_one(
        cluster, api_client, custom, apps, crds, operator, tmp_path):
    """Least privilege, proven: the chart's ServiceAccount suffices for admission and a whole release, and
    taking one permission away (creating Deployments, which canaries need) makes the release stall."""
    namespace = NAMESPACE
    core = kubernetes.client.CoreV1Api(api_client)
    config = install(cluster, api_client, {})
    governed = f"rbac-{tmp_path.name[-8:].lower().replace('_', '-')}"
    operator.stop()  # one operator at a time: the webhook configurations follow whoever runs
    # As the chart runs it: leader election in its namespace, its identity the Pod it labels when it leads.
    pod = "ballast-replica-0"
    core.create_namespaced_pod(namespace, {"metadata": {"name": pod}, "spec": {
        "automountServiceAccountToken": False, "containers": [{"name": "operator", "image": "ballast:test"}]}})
    charted = OperatorProcess(cluster, tmp_path / "operator.log",
                              kubeconfig=service_account_kubeconfig(cluster, api_client, namespace, "ballast",
                                                                    tmp_path / "kubeconfig"),
                              extra_args=("--leader-election", "--leader-election-id=ballast",
                                          f"--operator-namespace={namespace}"),
                              env={"POD_NAME": pod})
    try:
        core.create_namespace({"metadata": {"name": governed, "labels": {"ballast.dev/test-ns": governed}}})
        custom.create_cluster_custom_object(GROUP, VERSION, "releasepolicies", release_policy(
            f"rbac-{governed}", {"ballast.dev/test-ns": governed}, tiers={"medium": FAST_TIER}))
        charted.start()

        # Admission: a workload without owner, alerts and runbook is refused.
        naked = deployment("naked", {"app": "naked"})
        refusal = wait_for(lambda: refused(apps, governed, naked), 30, "the chart's operator never refused")
        assert "is missing annotation ballast.dev/owner" in refusal.body

        # Its own webhook configurations it reads and replaces (it just did); anyone else's it may not touch.
        foreign = kubernetes.client.V1ValidatingWebhookConfiguration(
            metadata=kubernetes.client.V1ObjectMeta(name=f"foreign-{governed}.example.com"))
        admission = kubernetes.client.AdmissionregistrationV1Api(api_client)
        admission.create_validating_webhook_configuration(foreign)
        try:
            as_operator = kubernetes.client.AdmissionregistrationV1Api(
                kubernetes.config.new_client_from_config(config_file=str(tmp_path / "kubeconfig")))
            assert as_operator.read_validating_webhook_configuration("ballast.dev").webhooks
            assert as_operator.read_mutating_webhook_configuration("ballast.dev").webhooks
            for call in (lambda: as_operator.read_validating_webhook_configuration(foreign.metadata.name),
                         lambda: as_operator.replace_validating_webhook_configuration(foreign.metadata.name, foreign),
                         lambda: as_operator.list_validating_webhook_configuration()):
                with pytest.raises(kubernetes.client.ApiException) as forbidden:
                    call()
                assert forbidden.value.status == 403
        finally:
            admission.delete_validating_webhook_configuration(foreign.metadata.name)

        # It leads: the Lease, and the leader label on its Pod.
        lease = kubernetes.client.CoordinationV1Api(api_client).read_namespaced_lease("ballast", namespace)
        assert lease.spec.holder_identity == pod
        assert core.read_namespaced_pod(pod, namespace).metadata.labels == {"ballast.dev/leader": "true"}

        # A whole release: held, canaried, analysed, promoted.
        body = deployment("shop", {"app": "shop"}, replicas=2, annotations=OWNERSHIP_ANNOTATIONS,
                          template_annotations=GOOD)
        apps.create_namespaced_deployment(governed, body)
        wait_for(lambda: (apps.read_namespaced_deployment("shop", governed).status.available_replicas or 0) == 2,
                 60, "shop never became available")
        change(apps, governed, "app:2.0", GOOD)
        promoted = release_in(custom, governed, FINAL)
        assert promoted["status"]["phase"] == "Promoted", promoted["status"]

        # Without `create` on Deployments the next release cannot start its canary.
        rbac = kubernetes.client.RbacAuthorizationV1Api(api_client)
        role = rbac.read_cluster_role("ballast")
        for rule in role.rules:
            if rule.resources == ["deployments"]:
                rule.verbs = [v for v in rule.verbs if v != "create"]
        rbac.replace_cluster_role("ballast", role)
        change(apps, governed, "app:3.0", GOOD)
        stalled = release_in(custom, governed, ("Progressing",), count=2)
        wait_for(lambda: "forbidden" in charted.log_tail().lower(), 30, "the missing permission never showed")
        with pytest.raises(TimeoutError):
            release_in(custom, governed, FINAL, count=2, timeout=15)
        assert canary_missing(apps, governed)
        assert stalled["status"]["phase"] == "Progressing"
    finally:
        charted.stop()
        core.delete_namespaced_pod(pod, namespace)
        operator.start()
        with contextlib.suppress(kubernetes.client.ApiException):
            custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", f"rbac-{governed}")
        with contextlib.suppress(kubernetes.client.ApiException):
            core.delete_namespace(governed)
        asyncio.run(helm.Uninstall(config).run("ballast", wait=False))


def canary_missing(apps, namespace) -> bool:
    try:
        apps.read_namespaced_deployment("shop-canary", namespace)
    except kubernetes.client.ApiException as error:
        return error.status == 404
    return False
