"""`helm upgrade --wait` on a Deployment Ballast holds, with the real Helm v4 library (helm-sdkpy).

What it does is documented in the README (section "Pipelines and GitOps"); this test keeps that page honest.
"""

from __future__ import annotations

import asyncio

import yaml

from tests.harness import wait_for
from tests.integration.helmlib import helm_or_skip
from tests.integration.kube import OWNERSHIP_ANNOTATIONS
from tests.integration.pipelines import plugin
from tests.integration.releasing import GOOD

helm = helm_or_skip()

TEMPLATE = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": OWNERSHIP_ANNOTATIONS},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"sim.ballast.dev/error-ratio": "ERR"}},
                          "spec": {"containers": [{"name": "app", "image": "IMAGE"}]}}},
}


def chart(path):
    """A one-Deployment chart whose image and error ratio are values."""
    (path / "templates").mkdir(parents=True)
    (path / "Chart.yaml").write_text("apiVersion: v2\nname: web\nversion: 0.1.0\n")
    text = yaml.safe_dump(TEMPLATE).replace("IMAGE", "{{ .Values.image }}")
    text = text.replace("ERR", "{{ .Values.errors | quote }}")
    (path / "templates" / "deployment.yaml").write_text(text)
    return str(path)


def test_helm_upgrade_wait_returns_while_ballast_still_holds_the_deployment(governed, apps, cluster, tmp_path):
    namespace = governed
    path = chart(tmp_path / "web")
    config = helm.Configuration(namespace=namespace, kubeconfig=cluster.kubeconfig)
    good = GOOD["sim.ballast.dev/error-ratio"]
    asyncio.run(helm.Install(config).run("web", path, values={"image": "app:1.0", "errors": good}, wait=True,
                                         timeout=120))  # a creation is never held
    wait_for(lambda: (apps.read_namespaced_deployment("web", namespace).status.available_replicas or 0) == 2, 60,
             "web never became available")

    # `helm upgrade --wait --timeout 240s`: it reports success with the change not even started.
    asyncio.run(helm.Upgrade(config).run("web", path, values={"image": "app:2.0", "errors": good}, wait=True,
                                         timeout=240))
    held = apps.read_namespaced_deployment("web", namespace)
    assert held.spec.paused is True
    assert "ballast.dev/pending-revision" in held.metadata.annotations
    assert held.spec.template.spec.containers[0].image == "app:2.0"
    assert held.status.updated_replicas in (None, 0)  # no pod of the new template runs yet

    # So a pipeline follows `helm upgrade` with `kubectl ballast wait`.
    waited = plugin(cluster, "wait", "deployment/web", "-n", namespace, "--timeout", "240")
    assert waited.returncode == 0, (waited.stdout, waited.stderr)
    assert " was promoted. " in waited.stdout.splitlines()[-1]
