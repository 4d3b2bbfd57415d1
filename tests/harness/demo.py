"""`make demo`: Ballast on the embedded local control plane, narrated.

Starts a fresh local control plane (building it on first use), installs the CRDs and examples/
(one of whose Deployments predates the policy and lacks a runbook), runs the operator, shows the
status it computes, then shows admission at work: a change to the non-compliant Deployment is
refused with a message naming the rule and the fix; once fixed, it is admitted. The cluster stays up
afterwards for exploring; `make cluster-down` stops it.
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

RUNBOOK = "https://runbooks.example.com/discovery/recommendations"


def say(text: str) -> None:
    text = textwrap.dedent(text).strip()
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def show(kubeconfig: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run kubectl visibly: the command, then what it printed (errors included)."""
    print(f"$ kubectl {' '.join(args)}", flush=True)
    out = kubectl(kubeconfig, *args, check=False)
    print(out.stdout + out.stderr, end="", flush=True)
    if check and out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed")
    return out


def jsonpath(kubeconfig: str, *args: str) -> str:
    return kubectl(kubeconfig, "get", *args).stdout


def start_operator(kubeconfig: str, prometheus_url: str, log_path: Path) -> subprocess.Popen[bytes]:
    health, metrics, webhook = (f"{port}" for port in free_ports(3))
    with log_path.open("w") as log:
        operator = subprocess.Popen(
            [sys.executable, "-m", "ballast.cli.main", "operator", "run", "--kubeconfig", kubeconfig,
             "--prometheus-url", prometheus_url, "--liveness", f"http://127.0.0.1:{health}/healthz",
             "--metrics-address", "127.0.0.1", "--metrics-port", metrics,
             "--webhook-address", "127.0.0.1", "--webhook-port", webhook],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def healthy() -> bool:
        if operator.poll() is not None:
            raise RuntimeError(f"the operator exited; see {log_path}")
        try:
            return requests.get(f"http://127.0.0.1:{health}/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    wait_for(healthy, 60, "the operator never became healthy")
    print(f"operator log: {log_path}\noperator metrics: http://127.0.0.1:{metrics}/metrics")
    return operator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.demo", description=__doc__)
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    args = parser.parse_args(argv)

    say("Starting a fresh local control plane (etcd, kube-apiserver, kube-controller-manager, Prometheus).")
    cluster = LocalCluster(args.state_dir)
    cluster.stop()  # a demo always starts from an empty cluster
    info = cluster.start()
    kubeconfig = info.kubeconfig
    print(f"kubeconfig: {kubeconfig}\nPrometheus: {info.prometheus_url}")

    say("Installing the CRDs generated from the pydantic models.")
    show(kubeconfig, "apply", "-f", str(REPO_ROOT / "crds"))
    kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=30s", "crd",
            "-l", "app.kubernetes.io/part-of=ballast")

    say("""
        Applying examples/: a namespace, a ReleasePolicy, two ServiceOwnerships and their Deployments.
        The recommendations Deployment predates Ballast and has no runbook annotation.""")
    show(kubeconfig, "apply", "-f", str(REPO_ROOT / "examples"))

    say("Running the operator: `ballast operator run`.")
    operator = start_operator(kubeconfig, info.prometheus_url, Path(args.state_dir) / "logs" / "operator-demo.log")
    try:
        wait_for(lambda: jsonpath(kubeconfig, "serviceownerships", "-n", "shop", "-o",
                                  "jsonpath={.items[*].status.workloadCount}").split() == ["1", "1"],
                 60, "the operator never computed the ServiceOwnership status")
        wait_for(lambda: jsonpath(kubeconfig, "releasepolicy", "production", "-o",
                                  "jsonpath={.status.violationCount}") == "1",
                 60, "the operator never audited the ReleasePolicy's namespaces")

        say("The status the operator computed: checkout is Ready; recommendations is not, and the policy "
            "counts one violation.")
        show(kubeconfig, "get", "serviceownerships,releasepolicies", "-A")
        say("Why recommendations is not Ready (its OwnershipComplete condition):")
        print(jsonpath(kubeconfig, "serviceownership", "recommendations", "-n", "shop", "-o",
                       'jsonpath={.status.conditions[?(@.type=="OwnershipComplete")].message}'))

        say("A service team ships a new image of recommendations. Ballast refuses the change:")
        image = "recommendations=registry.example.com/shop/recommendations:3.3.0"
        refused = show(kubeconfig, "set", "image", "deployment/recommendations", "-n", "shop", image, check=False)
        if refused.returncode == 0:
            raise RuntimeError("the change to a Deployment without a runbook was admitted")

        say("They add the runbook the message asks for, and ship again. Admitted:")
        show(kubeconfig, "annotate", "deployment/recommendations", "-n", "shop", f"ballast.dev/runbook={RUNBOOK}")
        show(kubeconfig, "set", "image", "deployment/recommendations", "-n", "shop", image)

        wait_for(lambda: jsonpath(kubeconfig, "releasepolicy", "production", "-o",
                                  "jsonpath={.status.violationCount}") == "0",
                 60, "the policy never noticed the fix")
        say("Both services are Ready now, and the policy has no violations left:")
        show(kubeconfig, "get", "serviceownerships,releasepolicies", "-A")
        say("Events the operator posted:")
        show(kubeconfig, "get", "events", "-n", "shop", "--field-selector", "involvedObject.kind=ServiceOwnership")
    finally:
        operator.terminate()
        operator.wait(timeout=15)
        # With the operator stopped, an Enforce policy's webhooks (failurePolicy Fail) would refuse every
        # change in shop; remove them so the cluster left behind stays usable.
        kubectl(kubeconfig, "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "ballast.dev",
                "--ignore-not-found", check=False)

    say(f"""
        Done. The cluster is still running (the operator is not; its webhook configurations were removed):
          export KUBECONFIG={kubeconfig}
          kubectl get serviceownerships,releasepolicies -A
          .venv/bin/ballast operator run --kubeconfig {kubeconfig}    # run the operator yourself
          make cluster-down                                            # stop everything
        """)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
