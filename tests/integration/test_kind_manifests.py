"""deploy/kind against the real components these machines have; `make kind-demo` itself needs Docker.

- Every object hack/kind-demo.sh applies (deploy/kind/*.yaml and the ConfigMaps it builds from
  deploy/kind/demo-app/) is accepted by kube-apiserver in a server-side dry run, unpruned.
- Prometheus, with deploy/kind's scrape configuration, labels the demo app's series so that Ballast's
  default analysis queries find them. Debian's Prometheus has no Kubernetes discovery, so the test
  hands it the pod targets that discovery would produce (the documented ``__meta_kubernetes_*`` labels)
  as static targets: the relabelling, the scrape and the queries are all real.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from string import Template
from typing import Any

import kubernetes
import pytest
import requests
import yaml

from ballast.api.releasepolicy import PrometheusQueries
from ballast.metrics.prometheus import PrometheusProvider
from tests.harness import require_binary, wait_for
from tests.harness.cluster import free_ports, get_ok
from tests.harness.kubectl import kubectl

REPO_ROOT = Path(__file__).resolve().parents[2]
KIND = REPO_ROOT / "deploy" / "kind"
MANIFESTS = [KIND / "prometheus.yaml", KIND / "demo-app.yaml", KIND / "operator-metrics.yaml"]
# (name, namespace, file) of the ConfigMaps hack/kind-demo.sh builds with `kubectl create configmap`.
CONFIGMAPS = [("demo-app", "shop", "app.py"), ("loadgen", "traffic", "loadgen.py")]


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` holds everything ``expected`` says (the server may add defaults, not drop fields)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(contains, actual, expected))
    return actual == expected


@pytest.fixture
def kind_namespaces(core: kubernetes.client.CoreV1Api) -> Iterator[list[str]]:
    """The namespaces the manifests live in, created for real (a dry run creates nothing to put objects in).

    Namespaces that already exist are someone else's: used, never deleted.
    """
    declared = {d["metadata"]["name"]: d for path in MANIFESTS for d in documents(path) if d["kind"] == "Namespace"}
    used = {d["metadata"]["namespace"] for path in MANIFESTS for d in documents(path) if "namespace" in d["metadata"]}
    created = []
    for name in sorted(used | declared.keys()):
        try:
            core.create_namespace(declared.get(name, {"metadata": {"name": name}}))
            created.append(name)
        except kubernetes.client.ApiException as error:
            if error.status != 409:
                raise
    try:
        yield sorted(used | declared.keys())
    finally:
        for name in created:
            core.delete_namespace(name)
        wait_for(lambda: not {n.metadata.name for n in core.list_namespace().items} & set(created), 120,
                 f"namespaces {created} were never deleted", 1)


def test_every_object_the_script_applies_is_accepted_by_the_api_server(cluster, crds, kind_namespaces, tmp_path):
    files = list(MANIFESTS)
    for name, namespace, source in CONFIGMAPS:
        built = kubectl(cluster.kubeconfig, "create", "configmap", name, "-n", namespace,
                        f"--from-file={KIND / 'demo-app' / source}", "--dry-run=client", "-o", "yaml").stdout
        files.append(tmp_path / f"{name}.yaml")
        files[-1].write_text(built)
    expected = {key(d): d for path in files for d in documents(path)}

    args = [arg for path in files for arg in ("-f", str(path))]
    result = kubectl(cluster.kubeconfig, "apply", "--dry-run=server", "-o", "json", *args, check=False)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    accepted = {key(item): item for item in (answer["items"] if answer["kind"] == "List" else [answer])}

    assert sorted(accepted) == sorted(expected)
    for name, obj in expected.items():
        for field in ("spec", "data", "rules", "roleRef", "subjects") & obj.keys():
            assert contains(accepted[name].get(field), obj.get(field)), f"{name}: the server changed or pruned {field}"
    # What the pods mount is what the script builds: the file each container runs is in its ConfigMap.
    configmaps = {name: source for name, _, source in CONFIGMAPS}
    for obj in expected.values():
        if obj["kind"] != "Deployment" or obj["metadata"]["namespace"] not in ("shop", "traffic"):
            continue
        pod = obj["spec"]["template"]["spec"]
        (volume,) = [v["configMap"]["name"] for v in pod["volumes"]]
        assert pod["containers"][0]["command"] == ["python", f"/app/{configmaps[volume]}"]
        assert f"kubectl create configmap {volume} " in (REPO_ROOT / "hack" / "kind-demo.sh").read_text()


# -- Prometheus --------------------------------------------------------------------------------------------

def load_demo_app() -> Any:
    spec = importlib.util.spec_from_file_location("kind_demo_app", KIND / "demo-app" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def discovered_pod(namespace: str, pod: str, phase: str = "Running", port_name: str = "http",
                   annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict[str, str]:
    """The meta labels Prometheus' Kubernetes discovery (role pod) gives a pod's container port."""
    meta = {"__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": pod,
            "__meta_kubernetes_pod_phase": phase, "__meta_kubernetes_pod_container_port_name": port_name}
    for name, value in (annotations or {}).items():
        meta[f"__meta_kubernetes_pod_annotation_{name.replace('.', '_').replace('/', '_')}"] = value
    for name, value in (labels or {}).items():
        meta[f"__meta_kubernetes_pod_label_{name.replace('.', '_').replace('/', '_')}"] = value
    return meta


def test_prometheus_labels_demo_series_as_ballasts_queries_select_them(tmp_path):
    binary = require_binary("prometheus", "prometheus")
    app = load_demo_app()
    server = app.DemoServer(("127.0.0.1", 0), 0.5, "test")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stable = "recommendations-5f6d7c8b9d-x2x4z"
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(server.server_port)}
    targets = {
        "pods": [
            # The container port says 8080; the annotation's port is where the app listens here.
            ("127.0.0.1:8080", discovered_pod("shop", stable, annotations=scrape)),
            ("127.0.0.1:8080", discovered_pod("shop", "unannotated-1", annotations={})),
            ("127.0.0.1:8080", discovered_pod("shop", "finished-job-1", phase="Succeeded", annotations=scrape)),
        ],
        "ballast": [
            ("127.0.0.1:1", discovered_pod("ballast-system", "ballast-6d4cf56db6-abcde", port_name="metrics",
                                           labels={"app.kubernetes.io/name": "ballast"})),
            ("127.0.0.1:2", discovered_pod("ballast-system", "ballast-6d4cf56db6-abcde", port_name="webhook",
                                           labels={"app.kubernetes.io/name": "ballast"})),
        ],
    }
    configmap = next(d for d in documents(KIND / "prometheus.yaml") if d["kind"] == "ConfigMap")
    config = yaml.safe_load(configmap["data"]["prometheus.yml"])
    (tmp_path / "rules.yml").write_text(configmap["data"]["rules.yml"])
    config["rule_files"] = [str(tmp_path / "rules.yml")]
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    for job in config["scrape_configs"]:
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": [address], "labels": meta} for address, meta in targets[job["job_name"]]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))

    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "prometheus.log").open("w") as log:
        process = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={tmp_path / 'data'}",
                                    f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: get_ok(f"{url}/-/ready"), 60, "Prometheus never became ready")

        def active() -> list[dict[str, Any]]:
            return requests.get(f"{url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]

        # Only the annotated running pod and the operator's metrics port survive relabelling, as namespace/pod.
        wait_for(lambda: any(t["health"] == "up" for t in active()), 30, "the demo app was never scraped")
        kept = sorted((t["labels"]["job"], t["labels"]["namespace"], t["labels"]["pod"], t["scrapeUrl"])
                      for t in active())
        assert kept == [("ballast", "ballast-system", "ballast-6d4cf56db6-abcde", "http://127.0.0.1:1/metrics"),
                        ("pods", "shop", stable, f"http://127.0.0.1:{server.server_port}/metrics")]

        for _ in range(40):  # after the first scrape, so that increase() sees every one
            requests.get(f"http://127.0.0.1:{server.server_port}/", timeout=5)
        counts = dict(server.counters.by_code)
        provider = PrometheusProvider(url)

        def series(code: str) -> float | None:
            return provider.query(f'http_requests_total{{namespace="shop",pod="{stable}",code="{code}"}}')

        wait_for(lambda: all(series(code) == counts[code] for code in counts), 30,
                 f"Prometheus never saw the app's counts {counts}")

        # Ballast's default analysis queries, rendered as the release engine renders them for stable pods.
        values = {"namespace": "shop", "pods": "recommendations-5f6d7c8b9d-.*", "window": "60s"}
        queries = PrometheusQueries()
        served = provider.query(Template(queries.requests).safe_substitute(values))
        failed = provider.query(Template(queries.errors).safe_substitute(values))
        assert served is not None and failed is not None
        assert 0 < failed < served, (served, failed, counts)
        # The alert the demo's ServiceOwnership names is loaded, as verifyAlertsExist would check.
        assert "RecommendationsErrorRate" in provider.alert_rule_names()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        server.shutdown()
        server.server_close()
