"""`make demo`: Ballast on the embedded local control plane, narrated.

Brings the local control plane up (building it on first use), installs the CRDs and examples/,
runs the operator, and shows the ServiceOwnership and ReleasePolicy status the operator computes.
The cluster stays up afterwards for exploring; `make cluster-down` stops it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import requests

from tests.harness import wait_for
from tests.harness.cluster import DEFAULT_STATE_DIR, REPO_ROOT, LocalCluster, free_ports
from tests.harness.kubectl import kubectl


def say(text: str) -> None:
    print(
        f"\n\033[1m==> {textwrap.dedent(text).strip()}\033[0m"
        if sys.stdout.isatty()
        else f"\n==> {textwrap.dedent(text).strip()}",
        flush=True,
    )


def show(kubeconfig: str, *args: str) -> str:
    print(f"$ kubectl {' '.join(args)}", flush=True)
    out = kubectl(kubeconfig, *args).stdout
    print(out, end="", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.demo", description=__doc__)
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    args = parser.parse_args(argv)

    say("Starting the local control plane (etcd, kube-apiserver, kube-controller-manager, Prometheus).")
    cluster = LocalCluster(args.state_dir)
    info = cluster.start()
    kubeconfig = info.kubeconfig
    print(f"kubeconfig: {kubeconfig}\nPrometheus: {info.prometheus_url}")

    say("Installing the CRDs generated from the pydantic models.")
    show(kubeconfig, "apply", "-f", str(REPO_ROOT / "crds"))
    kubectl(
        kubeconfig,
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd",
        "-l",
        "app.kubernetes.io/part-of=ballast",
    )

    say("Applying examples/: a namespace, a ReleasePolicy, two ServiceOwnerships and their Deployments.")
    show(kubeconfig, "apply", "-f", str(REPO_ROOT / "examples"))

    say("Running the operator: `ballast operator run`.")
    log_path = Path(args.state_dir) / "logs" / "operator-demo.log"
    health = f"http://127.0.0.1:{free_ports(1)[0]}/healthz"
    with log_path.open("w") as log:
        operator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ballast.cli.main",
                "operator",
                "run",
                "--kubeconfig",
                kubeconfig,
                "--prometheus-url",
                info.prometheus_url,
                "--liveness",
                health,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:

        def healthy() -> bool:
            if operator.poll() is not None:
                raise RuntimeError(f"the operator exited; see {log_path}")
            try:
                return requests.get(health, timeout=1).ok
            except requests.RequestException:
                return False

        wait_for(healthy, 60, "the operator never became healthy")
        print(f"operator log: {log_path}")

        def computed() -> bool:
            out = kubectl(
                kubeconfig, "get", "serviceownerships", "-n", "shop", "-o", "jsonpath={.items[*].status.workloadCount}"
            ).stdout.split()
            return out == ["1", "1"]

        wait_for(computed, 60, "the operator never computed the ServiceOwnership status")
        wait_for(
            lambda: (
                kubectl(
                    kubeconfig, "get", "releasepolicy", "production", "-o", "jsonpath={.status.governedNamespaceCount}"
                ).stdout
                == "1"
            ),
            60,
            "the operator never computed the ReleasePolicy status",
        )

        say("The status the operator computed. checkout is Ready; recommendations lacks a runbook annotation.")
        show(kubeconfig, "get", "serviceownerships,releasepolicies", "-A")
        say("Why recommendations is not Ready (its OwnershipComplete condition):")
        print(
            kubectl(
                kubeconfig,
                "get",
                "serviceownership",
                "recommendations",
                "-n",
                "shop",
                "-o",
                'jsonpath={.status.conditions[?(@.type=="OwnershipComplete")].message}',
            ).stdout
        )
        say("Events the operator posted:")
        show(kubeconfig, "get", "events", "-n", "shop", "--field-selector", "involvedObject.kind=ServiceOwnership")
    finally:
        operator.terminate()
        operator.wait(timeout=15)

    say(f"""
        Done. The cluster is still running:
          export KUBECONFIG={kubeconfig}
          kubectl get serviceownerships,releasepolicies -A
          ballast operator run --kubeconfig {kubeconfig}    # run the operator yourself
          make cluster-down                                  # stop everything
        """)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
