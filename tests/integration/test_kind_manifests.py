"""deploy/kind against the real components these machines have; `make kind-demo` itself needs Docker.

- One path for users: `make kind-demo` (hack/kind-demo.sh) applies exactly the manifests `make demo` applies
  on the local real node (tests/harness/demo.py), plus only what a kind cluster needs besides (KIND_ONLY,
  each with the reason); both run the demo app's one image under one name, from two definitions that agree
  (deploy/kind/demo-app/Dockerfile there, tests/harness/images.py here); the chart is installed with
  deploy/kind/values.yaml alone, whose image is the one the harness builds; and every probe the manifests
  declare is an endpoint the app answers as the probe means it; shipping a version changes the same fields.
- Every object hack/kind-demo.sh applies is accepted by kube-apiserver in a server-side dry run, unpruned.
- Prometheus, with deploy/kind's scrape configuration, labels the demo app's series so that Ballast's
  default analysis queries find them. Debian's Prometheus has no Kubernetes discovery, so the test
  hands it the pod targets that discovery would produce (the documented ``__meta_kubernetes_*`` labels)
  as static targets: the relabelling, the scrape and the queries are all real.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import threading
import urllib.error
import urllib.request
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
from tests.harness import demo, images, require_binary, wait_for
from tests.harness.cluster import free_ports, get_ok
from tests.harness.kubectl import kubectl
from tests.unit.test_images import final_stage

REPO_ROOT = Path(__file__).resolve().parents[2]
KIND = REPO_ROOT / "deploy" / "kind"
SCRIPT = REPO_ROOT / "hack" / "kind-demo.sh"
KIND_ONLY = {
    KIND / "prometheus.yaml": "Prometheus in the cluster; the local cluster runs Debian's on the host, with this "
                              "file's `pods` job (tests/harness/podsd.py)",
    KIND / "operator-metrics.yaml": "a NodePort so the host's browser reaches the operator's metrics",
    KIND / "loadgen.yaml": "users in a pod; on the local node (no cluster DNS) the harness sends the same "
                           "requests from the host (tests/harness/loadgen.py uses loadgen.py's hit())",
}
"""What only `make kind-demo` applies, and why the local demo needs no counterpart."""


def script_lines() -> list[str]:
    """hack/kind-demo.sh's lines with continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", SCRIPT.read_text())
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def applied_by_script() -> list[Path]:
    """Every file hack/kind-demo.sh hands to `kubectl apply -f`, in order."""
    return [REPO_ROOT / path for line in script_lines() if "kubectl apply" in line
            for path in re.findall(r"-f (\S+\.yaml)", line)]


def script_variable(name: str) -> str:
    (value,) = [line.split("=", 1)[1] for line in script_lines() if line.startswith(f"{name}=")]
    return value


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def containers(path: Path) -> list[dict[str, Any]]:
    return [container for d in documents(path) if d["kind"] == "Deployment"
            for container in d["spec"]["template"]["spec"]["containers"]]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def contains(actual: Any, expected: Any) -> bool:
    """Whether ``actual`` holds everything ``expected`` says (the server may add defaults, not drop fields)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(contains, actual, expected))
    return actual == expected


# -- one path: what kind-demo runs is what make demo runs here ------------------------------------------------

def test_kind_demo_applies_what_the_local_demo_applies_and_only_kinds_own_extras():
    applied = applied_by_script()
    assert len(applied) == len(set(applied)), applied  # nothing applied twice
    local = demo.Pods(real=True).manifests
    assert set(applied) == set(local) | KIND_ONLY.keys(), applied
    # In the story's order: the services before the policy that governs them (they predate Ballast).
    order = [p for p in applied if p in local]
    assert order.index(demo.REAL_SERVICES) < order.index(REPO_ROOT / "examples" / "02-releasepolicy-production.yaml")


def test_shipping_a_version_changes_the_same_fields_on_both_paths():
    """kind-demo's version_patch and make demo's Pods.template: a version is the demo app's env."""
    (function,) = re.findall(r"^version_patch\(\) \{\n.*?^\}$", SCRIPT.read_text(), re.MULTILINE | re.DOTALL)
    patch = subprocess.run(["bash", "-c", f"{function}\nversion_patch 3.5.0 0.2"], capture_output=True, text=True,
                           check=True).stdout
    assert json.loads(patch) == {"spec": {"template": demo.Pods(real=True).template("recommendations", "3.5.0", "0.2")}}


def test_one_demo_app_image_under_one_name():
    for path in (KIND / "demo-app.yaml", KIND / "loadgen.yaml"):
        for container in containers(path):
            assert container["image"] == images.DEMO_APP_IMAGE, (path, container["name"])
            assert container["imagePullPolicy"] == "Never", (path, container["name"])  # no registry on either path
            if "command" in container:  # the load generator: another file of the same image
                assert container["command"][0] == "python3"
                assert (KIND / "demo-app" / Path(container["command"][1]).name).is_file()
    # kind-demo builds and loads it under that name (docker's short form of docker.io/library/...).
    assert f"docker.io/library/{script_variable('DEMO_APP_IMAGE')}" == images.DEMO_APP_IMAGE
    lines = script_lines()
    assert any(re.search(r'docker build -t "\$DEMO_APP_IMAGE" deploy/kind/demo-app$', line) for line in lines)
    assert any("kind load docker-image" in line and '"$DEMO_APP_IMAGE"' in line for line in lines)


def test_demo_app_dockerfile_and_the_harness_image_agree():
    """deploy/kind/demo-app/Dockerfile (kind) and images.DEMO_APP (the local node): same files, user,
    entrypoint, env and port; only the base differs (python:3.12-slim there, Debian's python3 here)."""
    stage = final_stage((KIND / "demo-app" / "Dockerfile").read_text())
    spec = images.DEMO_APP
    assert stage["USER"] == [spec.user]
    assert [json.loads(e) for e in stage["ENTRYPOINT"]] == [spec.entrypoint]
    assert [p + "/tcp" for e in stage["EXPOSE"] for p in e.split()] == spec.exposed_ports
    env = dict(pair.split("=", 1) for e in stage["ENV"] for pair in shlex.split(e))
    assert env == {k: v for k, v in (pair.split("=", 1) for pair in spec.env) if k != "PATH"}
    (copy,) = stage["COPY"]
    *sources, target = copy.split()
    assert target == "/app/" and sorted(sources) == sorted(p.name for p in (KIND / "demo-app").glob("*.py"))


def test_chart_values_are_one_file_whose_image_the_harness_builds():
    (install,) = [line for line in script_lines() if "helm upgrade --install" in line]
    assert "-f deploy/kind/values.yaml" in install and "--set" not in install
    values = yaml.safe_load((KIND / "values.yaml").read_text())
    chart_values = yaml.safe_load((REPO_ROOT / "charts" / "ballast" / "values.yaml").read_text())
    app_version = yaml.safe_load((REPO_ROOT / "charts" / "ballast" / "Chart.yaml").read_text())["appVersion"]
    image = {**chart_values["image"], **values["image"]}
    assert f"docker.io/library/{image['repository']}:{image['tag'] or app_version}" == images.OPERATOR_IMAGE
    assert image["pullPolicy"] == "Never"
    # kind-demo builds that image: the chart's appVersion read from Chart.yaml.
    assert script_variable("OPERATOR_IMAGE") == "ballast:$APP_VERSION"
    assert "charts/ballast/Chart.yaml" in script_variable("APP_VERSION")
    # make demo installs the chart on the local node with the same file; only Prometheus's address differs.
    assert demo.chart_values("http://192.0.2.1:9090") == {**values, "prometheusUrl": "http://192.0.2.1:9090"}
    assert "prometheusUrl" not in values
    # The operator's Pods may run on the local real node as the demo's pods do.
    pod_tolerations = [d["spec"]["template"]["spec"]["tolerations"] for d in documents(KIND / "demo-app.yaml")
                       if d["kind"] == "Deployment"]
    assert all(values["tolerations"] == tolerations for tolerations in pod_tolerations)


def get_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_manifests_probes_are_the_apps_readiness_and_liveness_endpoints():
    """A readiness probe must fail while the app starts (else a canary gets traffic before it can serve it) and
    a liveness probe must not (else the kubelet kills every starting pod)."""
    app = load_demo_app()
    server = app.DemoServer(("127.0.0.1", 0), 0.0, "test", startup=3600)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        probes = containers(KIND / "demo-app.yaml")
        assert probes and all("readinessProbe" in c and "livenessProbe" in c for c in probes)
        for container in probes:
            assert get_status(base + container["readinessProbe"]["httpGet"]["path"]) == 503  # starting
            assert get_status(base + container["livenessProbe"]["httpGet"]["path"]) == 200
        server.ready_at = 0.0
        for container in probes:
            assert get_status(base + container["readinessProbe"]["httpGet"]["path"]) == 200  # started
    finally:
        server.shutdown()
        server.server_close()


# -- the API server -----------------------------------------------------------------------------------------

@pytest.fixture
def kind_namespaces(core: kubernetes.client.CoreV1Api) -> Iterator[list[str]]:
    """The namespaces the manifests live in, created for real (a dry run creates nothing to put objects in).

    Namespaces that already exist are someone else's: used, never deleted.
    """
    files = applied_by_script()
    declared = {d["metadata"]["name"]: d for path in files for d in documents(path) if d["kind"] == "Namespace"}
    used = {d["metadata"]["namespace"] for path in files for d in documents(path) if "namespace" in d["metadata"]}
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


def test_every_object_the_script_applies_is_accepted_by_the_api_server(cluster, crds, kind_namespaces):
    files = applied_by_script()
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
