"""`make demo`'s decisions: real or simulated pods, what shipping a version changes, how traffic is shown."""

from __future__ import annotations

import pytest

from tests.harness import demo
from tests.harness.node import NodeUnavailable


def test_real_pods_where_the_node_can_run():
    pods, message = demo.choose_pods("auto", [], ci=False)
    assert pods.real and message == ""
    assert demo.choose_pods("real", [], ci=True)[0].real
    assert demo.REAL_SERVICES in pods.manifests and demo.SIMULATED_SERVICES not in pods.manifests


def test_auto_falls_back_to_simulated_pods_saying_why():
    pods, message = demo.choose_pods("auto", ["the real node needs root", "runc is missing (Debian package runc)"],
                                     ci=False)
    assert not pods.real
    assert "No real node on this machine (the real node needs root; runc is missing" in message
    assert "make demo PODS=simulated" in message
    assert demo.SIMULATED_SERVICES in pods.manifests and demo.REAL_SERVICES not in pods.manifests


@pytest.mark.parametrize(("requested", "ci", "why"), [("real", False, "--pods real"), ("auto", True, "CI=true"),
                                                       ("real", True, "--pods real")])
def test_no_fallback_where_real_pods_are_required(requested, ci, why):
    with pytest.raises(demo.DemoUnavailable, match=f"cannot start on this machine \\(no cgroups\\), and {why}"):
        demo.choose_pods(requested, ["no cgroups"], ci=ci)


def test_simulated_on_request_even_where_the_node_could_run():
    pods, message = demo.choose_pods("simulated", [], ci=True)
    assert not pods.real and "as asked" in message


def test_the_same_governance_on_both_paths():
    real, simulated = demo.Pods(real=True).manifests, demo.Pods(real=False).manifests
    assert real[:-1] == simulated[:-1] == demo.GOVERNANCE


def test_a_real_version_is_the_demo_apps_env_and_a_simulated_one_its_image_and_annotation():
    env = [{"name": "VERSION", "value": "1.14.3"}, {"name": "ERROR_RATIO", "value": "0.005"}]
    assert demo.Pods(real=True).template("checkout", "1.14.3", "0.005") == {"spec": {"containers": [
        {"name": "checkout", "env": env}]}}
    assert demo.Pods(real=False).template("checkout", "1.14.3", "0.005") == {
        "metadata": {"annotations": {"sim.ballast.dev/error-ratio": "0.005"}},
        "spec": {"containers": [{"name": "checkout", "image": "registry.example.com/shop/checkout:1.14.3"}]}}


def test_traffic_table_puts_the_canary_first_with_its_share_and_errors():
    table = demo.traffic_table("recommendations", {
        "recommendations-5f6d7c8b9d-x2x4z": {"200": 59.6, "500": 0.4},
        "recommendations-canary-7c8b9d5f6d-abcde": {"200": 24.0, "500": 6.0},
        "recommendations-5f6d7c8b9d-q8w7e": {"200": 60.0, "500": 0.0},
        "recommendations-canary-0a1b2c3d4e-fghij": {"200": 0.0, "500": 0.0},  # an earlier release's canary
    }).splitlines()
    assert table[0].split() == ["POD", "TRACK", "REQUESTS", "SHARE", "5XX"]
    assert table[1].split() == ["recommendations-canary-7c8b9d5f6d-abcde", "canary", "30", "20%", "6"]
    assert [row.split()[1:] for row in table[2:]] == [["stable", "60", "40%", "0"], ["stable", "60", "40%", "0"]]


def test_traffic_table_without_traffic_has_only_its_header():
    assert demo.traffic_table("checkout", {}).splitlines() == [
        f"{'POD':<44} {'TRACK':<7} {'REQUESTS':>8} {'SHARE':>6} {'5XX':>5}"]


def test_a_node_that_fails_at_start_falls_back_saying_why_or_fails_under_ci(monkeypatch, capsys):
    """What only start() finds (another real node runs here, an image cannot be built) is handled like the
    problems found before it: simulated pods with the reason, or a failure where real pods are required."""
    def cannot_start(cluster):
        raise NodeUnavailable("another real node runs on this machine (one fits)")

    monkeypatch.setattr(demo, "real_pod_problems", lambda info: [])
    monkeypatch.setattr(demo, "start_real_node", cannot_start)
    monkeypatch.delenv("CI", raising=False)
    pods, node = demo.start_pods(cluster=None, info=None, requested="auto")
    assert not pods.real and node is None
    assert "No real node on this machine (another real node runs on this machine (one fits))" in capsys.readouterr().out
    with pytest.raises(demo.DemoUnavailable, match="--pods real forbids"):
        demo.start_pods(cluster=None, info=None, requested="real")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(demo.DemoUnavailable, match="CI=true forbids"):
        demo.start_pods(cluster=None, info=None, requested="auto")
