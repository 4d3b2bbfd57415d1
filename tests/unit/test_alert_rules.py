"""The chart's alert rules: valid for Prometheus, firing when they should, on metrics Ballast exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from tests.harness import require_binary
from tests.unit.test_dashboard import exported_names

RULES = Path(__file__).resolve().parents[2] / "charts" / "ballast" / "rules" / "ballast.rules.yaml"
RULE_TESTS = Path(__file__).parent / "data" / "ballast.rules.test.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("promtool", "prometheus"), *args], capture_output=True, text=True)


def test_prometheus_accepts_the_rules():
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alerts_fire_when_they_should_and_only_then():
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_alert_reads_metrics_the_operator_exports():
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    queried = {name for rule in rules for name in re.findall(r"\bballast_[a-z_]+", rule["expr"])}
    assert {"ballast_leader", "ballast_release_transitions_total"} <= queried
    assert queried <= exported_names(), f"not exported by the operator: {sorted(queried - exported_names())}"
