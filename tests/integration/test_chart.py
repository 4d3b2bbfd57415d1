"""The Helm chart, linted and installed with the real Helm v4 library into the real API server."""

from __future__ import annotations

import asyncio
import filecmp
import os
from pathlib import Path

import kubernetes
import pytest

try:
    import helm_sdkpy as helm
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("helm-sdkpy is missing: `make install` adds it (pip --ignore-requires-python)",
                allow_module_level=True)

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


def test_install_creates_every_object(cluster, api_client, crds):
    namespace = "ballast-system"
    core = kubernetes.client.CoreV1Api(api_client)
    try:
        core.create_namespace({"metadata": {"name": namespace}})
    except kubernetes.client.ApiException as error:
        if error.status != 409:
            raise
    config = helm.Configuration(namespace=namespace, kubeconfig=cluster.kubeconfig)
    values = {"prometheusUrl": cluster.prometheus_url, "grafanaDashboard": {"enabled": True},
              "defaultPolicy": {"enabled": True, "mode": "Audit",
                                "namespaceSelector": {"matchLabels": {"ballast.dev/chart-test": "yes"}}}}
    asyncio.run(helm.Install(config).run("ballast", str(CHART), values=values, wait=False, timeout=60))
    try:
        apps, rbac = kubernetes.client.AppsV1Api(api_client), kubernetes.client.RbacAuthorizationV1Api(api_client)
        deployment = apps.read_namespaced_deployment("ballast", namespace)
        container = deployment.spec.template.spec.containers[0]
        assert container.security_context.read_only_root_filesystem is True
        assert deployment.spec.template.spec.security_context.run_as_non_root is True
        assert f"--webhook-service={namespace}/ballast" in container.args
        assert container.liveness_probe.http_get.path == "/healthz"
        assert deployment.metadata.labels["app.kubernetes.io/part-of"] == "ballast"
        assert core.read_namespaced_service_account("ballast", namespace)
        assert core.read_namespaced_service("ballast", namespace).spec.ports[0].port == 443
        secret = core.read_namespaced_secret("ballast-webhook-tls", namespace)
        assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret.data)
        assert core.read_namespaced_config_map("ballast-dashboard", namespace).data["ballast.json"].startswith("{")
        role = rbac.read_cluster_role("ballast")
        assert any("releases" in (rule.resources or []) and "create" in rule.verbs for rule in role.rules)
        assert rbac.read_cluster_role_binding("ballast").subjects[0].name == "ballast"
        policy = kubernetes.client.CustomObjectsApi(api_client).get_cluster_custom_object(
            "ballast.dev", "v1alpha1", "releasepolicies", "default")
        assert policy["spec"]["admission"] == {"mode": "Audit", "exemptNamespaces": [namespace]}
    finally:
        asyncio.run(helm.Uninstall(config).run("ballast", wait=False))
