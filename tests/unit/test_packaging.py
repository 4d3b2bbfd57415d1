"""Static checks of what cannot be built here: the container image and the kind cluster file."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ballast.cli.operator import run

ROOT = Path(__file__).resolve().parents[2]


def test_image_runs_the_operator_as_non_root_without_build_tools():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) == 2, "a build stage and a slim final stage"
    final = lines[stages[-1]:]
    assert any(line.startswith("USER 65532") for line in final)
    assert 'ENTRYPOINT ["ballast", "operator", "run"]' in final
    assert not any(word in line for line in final for word in ("gcc", "build-essential", "pip install"))


def test_image_default_arguments_are_options_the_operator_takes():
    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    run.make_context("run", json.loads(cmd.removeprefix("CMD ")))  # raises on an unknown option


def test_kind_config_has_a_control_plane_and_workers():
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    roles = [node["role"] for node in config["nodes"]]
    assert roles.count("control-plane") == 1 and roles.count("worker") >= 1
