"""Test harness: a real local Kubernetes control plane plus the parts a laptop lacks.

Ballast must be tested against a real kube-apiserver (admission webhooks, status
subresources, owner references and garbage collection are where operators break),
but the machines that run the suite have no Docker, so no kind. The harness runs
etcd, kube-apiserver, kube-controller-manager and Prometheus as plain processes
(`cluster.py`) and replaces the two things that are missing with simulators:
`podsim.py` plays kubelet+scheduler (pods become Running/Ready through the status
subresource) and `trafficsim.py` plays users (per-pod request/error counters that
Prometheus scrapes). See README.md in this directory.

`wait_for` lives here because every layer (harness, integration tests, benchmarks)
needs the same "poll against a deadline" primitive instead of fixed sleeps.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, message: str, interval: float = 0.2) -> T:
    """Call `predicate` until it returns something truthy and return that value.

    Raises TimeoutError(message) once `timeout` seconds have passed. Exceptions from
    the predicate propagate, so a predicate can abort the wait early (e.g. when the
    process it waits for has died).
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} (waited {timeout:g}s)")
        time.sleep(interval)


def require_binary(name: str, package: str) -> str:
    """The path of a tool a test needs from a Debian package: skipped without it, failed under CI=true
    (where .ci/run installs it, so its absence is a broken install, not a reason to skip)."""
    import pytest  # only tests call this; the harness itself runs without pytest

    if found := shutil.which(name):
        return found
    message = f"{name} is missing (Debian package {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
