"""What pipeline tests share: the kubectl plugin run as a pipeline runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.harness.kubectl import kubectl_binary

VENV_BIN = str(Path(sys.executable).parent)


def start_plugin(cluster, *args: str) -> subprocess.Popen[str]:
    """`kubectl ballast ...` as a pipeline runs it: kubectl finds the kubectl-ballast plugin on PATH."""
    env = {**os.environ, "KUBECONFIG": cluster.kubeconfig, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    return subprocess.Popen([kubectl_binary(), "ballast", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def finished(process: subprocess.Popen[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def plugin(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return finished(start_plugin(cluster, *args))
