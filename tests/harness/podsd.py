"""Kubernetes pod discovery for the harness's Prometheus, served as Prometheus HTTP service discovery.

Why not `kubernetes_sd_configs`: Debian builds Prometheus without Kubernetes discovery (its promtool
rejects the field), and only Debian's Prometheus can be installed here. So this process asks the API
server for the real node's pods, as `kubernetes_sd_configs: [{role: pod}]` does, and answers Prometheus'
`http_sd_configs` with the same targets and the same `__meta_kubernetes_*` labels (those of Prometheus'
discovery/kubernetes/pod.go that the harness uses). Prometheus' relabelling is then the users' own,
taken unchanged from deploy/kind/prometheus.yaml (`pods_scrape_config`), so the harness scrapes and
labels pods exactly as a user's Prometheus does.

Only pods bound to the real node are listed: simulated pods have no address to scrape (trafficsim
serves their counters).

    python -m tests.harness.podsd --kubeconfig K --port P --node ballast-node
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config

REPO_ROOT = Path(__file__).resolve().parents[2]
KIND_PROMETHEUS = REPO_ROOT / "deploy" / "kind" / "prometheus.yaml"
META = "__meta_kubernetes_"
SD_PATH = "/pods"


def sanitize(name: str) -> str:
    """A Kubernetes label or annotation key as a Prometheus label name (strutil.SanitizeLabelName)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def pod_ready(pod: dict[str, Any]) -> str:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status", "unknown")).lower()
    return "unknown"


def target_groups(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """HTTP SD target groups for pods (API JSON): one per container port, or per container without ports.

    Pods without an IP have nothing to scrape and give no target, as in Kubernetes discovery.
    """
    groups = []
    for pod in pods:
        meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
        ip = status.get("podIP")
        if not ip:
            continue
        labels = {
            f"{META}namespace": meta["namespace"],
            f"{META}pod_name": meta["name"],
            f"{META}pod_ip": ip,
            f"{META}pod_ready": pod_ready(pod),
            f"{META}pod_phase": status.get("phase", ""),
            f"{META}pod_node_name": spec.get("nodeName", ""),
            f"{META}pod_host_ip": status.get("hostIP", ""),
            f"{META}pod_uid": meta.get("uid", ""),
        }
        for kind, values in (("label", meta.get("labels")), ("annotation", meta.get("annotations"))):
            for key, value in (values or {}).items():
                labels[f"{META}pod_{kind}_{sanitize(key)}"] = value
                labels[f"{META}pod_{kind}present_{sanitize(key)}"] = "true"
        controller = next((ref for ref in meta.get("ownerReferences") or [] if ref.get("controller")), None)
        if controller:
            labels[f"{META}pod_controller_kind"] = controller["kind"]
            labels[f"{META}pod_controller_name"] = controller["name"]
        for container in spec.get("containers") or []:
            per_container = {**labels, f"{META}pod_container_name": container["name"],
                             f"{META}pod_container_image": container.get("image", ""),
                             f"{META}pod_container_init": "false"}
            ports = container.get("ports") or []
            if not ports:
                groups.append({"targets": [ip], "labels": per_container})
            for port in ports:
                groups.append({"targets": [f"{ip}:{port['containerPort']}"], "labels": {
                    **per_container,
                    f"{META}pod_container_port_name": port.get("name", ""),
                    f"{META}pod_container_port_number": str(port["containerPort"]),
                    f"{META}pod_container_port_protocol": port.get("protocol", "TCP"),
                }})
    return groups


def pods_scrape_config(sd_url: str, refresh_interval: str = "1s") -> dict[str, Any]:
    """The kind demo's `pods` scrape job (deploy/kind/prometheus.yaml) with this discovery in place of
    `kubernetes_sd_configs`: its relabelling (annotation opt-in, port, `namespace` and `pod` labels) as is."""
    configmap = next(d for d in yaml.safe_load_all(KIND_PROMETHEUS.read_text()) if d["kind"] == "ConfigMap")
    jobs = yaml.safe_load(configmap["data"]["prometheus.yml"])["scrape_configs"]
    job = copy.deepcopy(next(j for j in jobs if j["job_name"] == "pods"))
    assert [sd["role"] for sd in job.pop("kubernetes_sd_configs")] == ["pod"]
    job["http_sd_configs"] = [{"url": sd_url, "refresh_interval": refresh_interval}]
    return job


def serve(kubeconfig: str, port: int, node: str) -> None:
    core = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != SD_PATH:
                self.send_error(404)
                return
            # A fresh list per refresh: Prometheus asks once a second, which the API server shrugs off.
            response = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}",
                                                        _preload_content=False)
            body = json.dumps(target_groups(json.loads(response.data)["items"])).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--node", required=True)
    args = parser.parse_args()
    serve(args.kubeconfig, args.port, args.node)


if __name__ == "__main__":
    main()
