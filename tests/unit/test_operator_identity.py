"""The operator refuses to serve webhooks when it cannot tell its own writes from people's."""

from __future__ import annotations

import subprocess
import sys

import yaml


def test_webhooks_need_a_known_operator_identity(tmp_path):
    # A kubeconfig without a token: the TokenReview that asks who the operator is cannot be made.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    run = subprocess.run(
        [sys.executable, "-m", "ballast.cli.main", "operator", "run", "--kubeconfig", str(kubeconfig),
         "--health-port", "0", "--metrics-port", "0"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 2, run.stderr
    assert "cannot serve webhooks that must let its own writes through: pass --operator-username" in run.stderr
