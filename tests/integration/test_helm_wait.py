"""`helm upgrade --wait` on a Deployment Ballast holds, with the real Helm v4 library (helm-sdkpy).

What it does is documented in the README (section "Pipelines and GitOps"); this test keeps that page honest.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import yaml

from tests.harness import wait_for
from tests.integration.kube import OWNERSHIP_ANNOTATIONS
from tests.integration.releasing import BAD, FINAL, GOOD, release_in

try:
    import helm_sdkpy as helm
except ImportError:
    if os.environ.get("CI") == "true":
        raise
    pytest.skip("helm-sdkpy is missing: `make install` adds it (pip --ignore-requires-python)",
                allow_module_level=True)

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
    text = yaml.safe_dump(TEMPLATE).replace("IMAGE", "{{ .Values.image }}").replace("ERR", "{{ .Values.errors }}")
    (path / "templates" / "deployment.yaml").write_text(text)
    return str(path)


def upgrade(config, path, image, errors) -> float:
    """`helm upgrade web <chart> --wait --timeout 240s`; the seconds it took."""
    started = time.monotonic()
    asyncio.run(helm.Upgrade(config).run("web", path, values={"image": image, "errors": errors}, wait=True,
                                         timeout=240))
    return time.monotonic() - started


def test_helm_upgrade_wait_waits_for_the_promotion_and_calls_a_rollback_success(governed, apps, custom, cluster,
                                                                                tmp_path):
    namespace = governed
    path = chart(tmp_path / "web")
    config = helm.Configuration(namespace=namespace, kubeconfig=cluster.kubeconfig)
    asyncio.run(helm.Install(config).run("web", path, values={"image": "app:1.0", "errors": GOOD[
        "sim.ballast.dev/error-ratio"]}, wait=True, timeout=120))  # a creation is never held

    # Held: the new template has no replica yet, so Helm's wait (kstatus) keeps waiting until Ballast un-pauses.
    upgrade(config, path, "app:2.0", GOOD["sim.ballast.dev/error-ratio"])
    first = release_in(custom, namespace, ("Promoting", "Promoted"), deployment_name="web", timeout=5)
    assert first["status"]["phase"] in ("Promoting", "Promoted")
    assert len(first["status"]["analyses"]) >= 2  # every canary step was judged before Helm returned

    # Rolled back: the stable template is restored and complete, so Helm's wait ends, and the upgrade "succeeds".
    upgrade(config, path, "app:3.0-bad", BAD["sim.ballast.dev/error-ratio"])
    second = wait_for(lambda: (r := release_in(custom, namespace, FINAL, count=2, deployment_name="web", timeout=5))
                      and r, 30, "the second release never finished")
    assert second["status"]["phase"] == "RolledBack", second["status"]
    assert apps.read_namespaced_deployment("web", namespace).spec.template.spec.containers[0].image == "app:2.0"
    history = asyncio.run(helm.History(config).run("web"))
    assert [entry.get("info", {}).get("status") for entry in history][-1] == "deployed"
