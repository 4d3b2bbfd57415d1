"""The kind demo (deploy/kind, hack/kind-demo.sh) as far as it runs without Docker.

The demo service and the load generator run here as they run in their pods; the script is parsed by
bash; Prometheus' configuration is checked by promtool; the service's manifest by Ballast's own
admission rules. What needs real pods is left to `make kind-demo` (see deploy/kind/README.md).
"""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from ballast.cli.main import cli
from tests.harness import images, require_binary, wait_for
from tests.harness.cluster import free_ports, get_ok

REPO_ROOT = Path(__file__).resolve().parents[2]
KIND = REPO_ROOT / "deploy" / "kind"


def load(name: str) -> ModuleType:
    """deploy/kind/demo-app/<name>.py as a module (the directory is no package: its files go in ConfigMaps)."""
    spec = importlib.util.spec_from_file_location(f"kind_demo_{name}", KIND / "demo-app" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = load("app")
loadgen = load("loadgen")


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """serve(error_ratio, latency=0, startup=0) -> base URL of a demo server on a free port, stopped after the test."""
    servers = []

    def start(error_ratio: float, latency: float = 0.0, startup: float = 0.0) -> str:
        server = app.DemoServer(("127.0.0.1", 0), error_ratio, "test", latency=latency, startup=startup)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def families(base: str) -> dict[str, Any]:
    """/metrics parsed by the Prometheus client's own parser, by family name."""
    status, text = get(f"{base}/metrics")
    assert status == 200
    return {f.name: f for f in text_string_to_metric_families(text)}


def scraped(base: str) -> dict[str, float]:
    """http_requests_total by code."""
    family = families(base)["http_requests"]
    assert family.type == "counter"
    return {s.labels["code"]: s.value for s in family.samples if s.name == "http_requests_total"}


def histogram(base: str) -> dict[str, Any]:
    """http_request_duration_seconds: {"buckets": {le: count}, "sum": s, "count": n}."""
    family = families(base)["http_request_duration_seconds"]
    assert family.type == "histogram"
    found: dict[str, Any] = {"buckets": {}}
    for sample in family.samples:
        if sample.name.endswith("_bucket"):
            found["buckets"][sample.labels["le"]] = sample.value
        else:
            found[sample.name.rsplit("_", 1)[-1]] = sample.value
    return found


def test_both_series_exist_before_the_first_request(serve):
    assert scraped(serve(0.5)) == {"200": 0, "500": 0}


@pytest.mark.parametrize(("error_ratio", "code"), [(1.0, 500), (0.0, 200)])
def test_every_request_is_answered_and_counted_by_code(serve, error_ratio, code):
    base = serve(error_ratio)
    answers = [get(f"{base}/")[0] for _ in range(30)]
    assert answers == [code] * 30
    assert get(f"{base}/healthz") == (200, "ok\n")
    scraped(base)  # probes and scrapes are not traffic
    assert scraped(base) == {"200": 0, "500": 0, str(code): 30}


def test_a_share_of_requests_fails(serve):
    random.seed(20)  # the app draws from the module-level generator; requests are sequential here
    base = serve(0.2)
    answers = [get(f"{base}/")[0] for _ in range(400)]
    errors = answers.count(500)
    assert 40 <= errors <= 120, errors  # 80 expected; the bounds are over 4 standard deviations apart
    assert scraped(base) == {"200": 400 - errors, "500": errors}


def test_latency_is_the_versions_and_is_measured_in_the_histogram(serve):
    fast, slow = serve(0.0), serve(0.0, latency=0.1)
    for base in (fast, slow):
        for _ in range(5):
            get(f"{base}/")
    get(f"{slow}/healthz")  # probes are not traffic: not observed
    quick, sluggish = histogram(fast), histogram(slow)
    assert quick["count"] == sluggish["count"] == 5
    assert quick["buckets"]["0.05"] == 5 and quick["sum"] < 0.25
    # 0.1 s +- 50 %: every request between 0.05 s and 0.15 s (+ scheduling), so none in the 0.05 bucket.
    assert sluggish["buckets"]["0.05"] == 0 and sluggish["buckets"]["0.25"] == 5
    assert 0.25 <= sluggish["sum"] <= 1.0, sluggish
    counts = [sluggish["buckets"][le] for le in ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
                                                  "2.5", "+Inf")]
    assert counts == sorted(counts) and counts[-1] == 5  # cumulative, as Prometheus' histogram_quantile needs


def test_readiness_waits_for_the_startup_delay_and_liveness_does_not(serve):
    started = time.monotonic()
    base = serve(0.0, startup=1.0)
    status, body = get(f"{base}/readyz")
    assert status == 503 and body.startswith("starting: "), body
    assert get(f"{base}/healthz") == (200, "ok\n")
    wait_for(lambda: get(f"{base}/readyz")[0] == 200, 10, "never became ready")
    assert time.monotonic() - started >= 1.0
    assert get(f"{base}/readyz") == (200, "ready\n")


def test_loadgen_reports_what_each_request_got(serve):
    good, bad = serve(0.0), serve(1.0)
    tally = loadgen.Tally()
    for url in (f"{good}/", f"{bad}/", f"{bad}/", "http://127.0.0.1:9/"):  # port 9: nothing listens
        tally.add(loadgen.hit(url))
    assert tally.take() == {0: 1, 200: 1, 500: 2}
    assert tally.take() == {}


def test_the_pod_runs_the_app_with_its_template_env():
    """The container's env, as in demo-app.yaml, with the error ratio turned up to 1; the image's entrypoint
    (no command in the manifest) runs app.py."""
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all((KIND / "demo-app.yaml").read_text())
            if d["kind"] == "Deployment"}
    template = docs["recommendations"]["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert "command" not in container and images.DEMO_APP.entrypoint == ["python3", "/app/app.py"]
    assert template["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true", "prometheus.io/port": str(container["ports"][0]["containerPort"])}
    (port,) = free_ports(1)
    env = {**os.environ, **{e["name"]: e["value"] for e in container["env"]}, "ERROR_RATIO": "1.0", "PORT": str(port),
           "LATENCY_MS": "20", "STARTUP_SECONDS": "2", "DRAIN_SECONDS": "1"}
    launched = time.monotonic()
    process = subprocess.Popen([sys.executable, str(KIND / "demo-app" / "app.py")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: get_ok(f"{base}/healthz"), 10, "the app never answered its readiness probe")
        wait_for(lambda: get(f"{base}/readyz")[0] == 200, 10, "the app never became ready")
        assert time.monotonic() - launched >= 2.0  # STARTUP_SECONDS from the env
        assert get(f"{base}/") == (500, "recommendations 3.2.0: 500\n")
        assert histogram(base)["sum"] >= 0.01  # LATENCY_MS=20 from the env: 10-30 ms
        terminated = time.monotonic()
        process.terminate()  # SIGTERM, as the kubelet sends it: not ready, still answering, gone after DRAIN_SECONDS
        wait_for(lambda: get(f"{base}/readyz")[0] == 503, 5, "still ready after SIGTERM")
        assert get(f"{base}/")[0] == 500  # still serving the connections kube-proxy sends meanwhile
        assert process.wait(5) == 0
        assert time.monotonic() - terminated >= 1.0
    finally:
        process.kill()
    assert "error ratio 1.0, latency 20 ms, ready in 2 s" in process.stdout.read()


def check(documents: list[dict[str, Any]]) -> Any:
    return CliRunner().invoke(cli, ["check", "-f", "-", "--policy",
                                    str(REPO_ROOT / "examples" / "02-releasepolicy-production.yaml")],
                              input=yaml.safe_dump_all(documents))


def test_the_demo_services_pass_the_example_policy_once_recommendations_has_its_runbook():
    """`kubectl ballast check`, the webhook's own rules: both demos' first chapter. recommendations predates
    Ballast without a runbook and is refused for exactly that; with the runbook the demos add, both pass."""
    shop = [d for d in yaml.safe_load_all((KIND / "demo-app.yaml").read_text())
            if d["metadata"].get("namespace") == "shop"]
    result = check(shop)
    assert result.exit_code != 0, result.output
    assert "OK       Deployment shop/checkout" in result.output
    assert "REFUSED  Deployment shop/recommendations" in result.output
    assert result.output.count("  - ") == 1 and "is missing annotation ballast.dev/runbook" in result.output
    recommendations = next(d for d in shop if d["metadata"]["name"] == "recommendations")
    recommendations["metadata"]["annotations"]["ballast.dev/runbook"] = (
        "https://runbooks.example.com/discovery/recommendations")
    result = check(shop)
    assert result.exit_code == 0, result.output
    assert "OK       Deployment shop/recommendations" in result.output


def test_prometheus_configuration_passes_promtool(tmp_path):
    promtool = require_binary("promtool", "prometheus")
    configmap = next(d for d in yaml.safe_load_all((KIND / "prometheus.yaml").read_text())
                     if d["kind"] == "ConfigMap")
    config = yaml.safe_load(configmap["data"]["prometheus.yml"])
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]  # where the ConfigMap is mounted
    (tmp_path / "rules.yml").write_text(configmap["data"]["rules.yml"])
    config["rule_files"] = [str(tmp_path / "rules.yml")]
    # Debian builds Prometheus without Kubernetes discovery, so its promtool rejects kubernetes_sd_configs:
    # check everything else (relabelling, rules) with a static target in its place.
    for job in config["scrape_configs"]:
        assert [sd["role"] for sd in job.pop("kubernetes_sd_configs")] == ["pod"]
        job["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rules found" in result.stdout


def test_kind_demo_script_parses():
    result = subprocess.run(["bash", "-n", str(REPO_ROOT / "hack" / "kind-demo.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
