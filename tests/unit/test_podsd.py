"""Pod discovery for the harness's Prometheus (tests/harness/podsd.py): Kubernetes SD's targets and labels."""

from __future__ import annotations

import subprocess

import yaml

from tests.harness import podsd, require_binary

M = podsd.META


def pod(name: str, ip: str | None, ports: list[int], annotations: dict[str, str] | None = None) -> dict:
    return {
        "metadata": {"name": name, "namespace": "shop", "uid": "u-1", "annotations": annotations or {},
                     "labels": {"app": "shop", "pod-template-hash": "abc"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "shop-abc", "controller": True}]},
        "spec": {"nodeName": "ballast-node",
                 "containers": [{"name": "app", "image": "demo:1",
                                 "ports": [{"containerPort": p, "name": f"p{p}"} for p in ports]}]},
        "status": {"podIP": ip, "hostIP": "10.0.0.5", "phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_one_target_per_container_port_with_pod_role_labels() -> None:
    groups = podsd.target_groups([pod("shop-abc-1", "10.88.0.7", [8080, 9090],
                                      {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"})])
    assert [g["targets"] for g in groups] == [["10.88.0.7:8080"], ["10.88.0.7:9090"]]
    labels = groups[0]["labels"]
    assert labels[f"{M}namespace"] == "shop" and labels[f"{M}pod_name"] == "shop-abc-1"
    assert labels[f"{M}pod_ready"] == "true" and labels[f"{M}pod_phase"] == "Running"
    assert labels[f"{M}pod_annotation_prometheus_io_scrape"] == "true"
    assert labels[f"{M}pod_annotationpresent_prometheus_io_port"] == "true"
    assert labels[f"{M}pod_label_pod_template_hash"] == "abc"
    assert labels[f"{M}pod_controller_kind"] == "ReplicaSet" and labels[f"{M}pod_controller_name"] == "shop-abc"
    assert (labels[f"{M}pod_container_port_number"], labels[f"{M}pod_container_port_name"]) == ("8080", "p8080")
    assert labels[f"{M}pod_container_port_protocol"] == "TCP"


def test_pods_without_ip_give_nothing_and_portless_containers_their_ip() -> None:
    assert podsd.target_groups([pod("pending", None, [8080])]) == []
    (group,) = podsd.target_groups([pod("bare", "10.88.0.8", [])])
    assert group["targets"] == ["10.88.0.8"] and f"{M}pod_container_port_number" not in group["labels"]


def test_scrape_job_is_the_kind_demos_with_http_discovery(tmp_path) -> None:
    job = podsd.pods_scrape_config("http://127.0.0.1:1234/pods")
    assert job["http_sd_configs"] == [{"url": "http://127.0.0.1:1234/pods", "refresh_interval": "1s"}]
    assert "kubernetes_sd_configs" not in job
    targets = {rule.get("target_label") for rule in job["relabel_configs"]}
    assert {"namespace", "pod", "__address__"} <= targets  # what the default queries select on
    promtool = require_binary("promtool", "prometheus")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": [job]}))
    result = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
