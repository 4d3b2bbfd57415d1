"""`make demo`: Ballast on the embedded local control plane, narrated.

Starts a fresh local control plane (building it on first use), installs the CRDs and examples/
(one of whose Deployments predates the policy and lacks a runbook), runs the operator, shows the
status it computes, then shows admission at work (a change to the non-compliant Deployment is
refused with a message naming the rule and the fix; once fixed, it is admitted), then a good
release promoted through canary steps and a bad one rolled back automatically, and ends with the
release history. The cluster stays up afterwards for exploring; `make cluster-down` stops it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.harness import wait_for
from tests.harness.cluster import DEFAULT_STATE_DIR, REPO_ROOT, LocalCluster
from tests.harness.kubectl import kubectl
from tests.harness.operator import OperatorProcess

FINAL = ("Promoted", "RolledBack", "Superseded", "Failed")

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


def release_phase(kubeconfig: str, namespace: str, image: str) -> str:
    """The phase of the release that carries ``image``, or '' while none does."""
    out = jsonpath(kubeconfig, "releases", "-n", namespace, "-o",
                   "jsonpath={range .items[*]}{.spec.toImages[0]} {.status.phase}{\"\\n\"}{end}")
    phases = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith(f"{image} ") and " " in line]
    return phases[-1] if phases else ""


def ship(kubeconfig: str, image: str, error_ratio: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """What a service team's `kubectl apply` of a new version amounts to: a new pod template."""
    patch = json.dumps({"spec": {"template": {
        "metadata": {"annotations": {"sim.ballast.dev/error-ratio": error_ratio}},
        "spec": {"containers": [{"name": "recommendations", "image": image}]}}}})
    return show(kubeconfig, "patch", "deployment/recommendations", "-n", "shop", "-p", patch, check=check)


def wait_release(kubeconfig: str, image: str, phases: tuple[str, ...], what: str) -> str:
    def reached() -> str | None:
        phase = release_phase(kubeconfig, "shop", image)
        return phase if phase in phases else None
    return wait_for(reached, 120, f"the release of {image} never {what}")


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

    say("Running the operator: `ballast operator run`, as its own identity `ballast-operator`.")
    operator = OperatorProcess(info, Path(args.state_dir) / "logs" / "operator-demo.log")
    operator.start()
    print(f"operator log: {operator.log_path}\noperator metrics: {operator.metrics_url}")
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

        say("""
            recommendations is low tier. So that this demo takes seconds, not minutes, the low tier's canary
            steps are shortened to 25% then 50% of traffic, 5 seconds each (the example says 50% for 1 minute).""")
        show(kubeconfig, "patch", "releasepolicy", "production", "--type", "merge", "-p", json.dumps(
            {"spec": {"tiers": {"low": {"steps": [25, 50], "stepDuration": "5s", "minRequests": 20}}}}))

        say("A service team ships a new version of recommendations (0.5% errors, like today's). Ballast refuses:")
        good = "registry.example.com/shop/recommendations:3.3.0"
        if ship(kubeconfig, good, "0.005", check=False).returncode == 0:
            raise RuntimeError("the change to a Deployment without a runbook was admitted")

        say("They add the runbook the message asks for, and ship again. Admitted, and held: the Deployment is "
            "paused while a canary takes a share of the traffic and Prometheus compares it with the stable pods:")
        show(kubeconfig, "annotate", "deployment/recommendations", "-n", "shop", f"ballast.dev/runbook={RUNBOOK}")
        ship(kubeconfig, good, "0.005")
        wait_release(kubeconfig, good, ("Progressing",), "started")
        show(kubeconfig, "get", "deployments", "-n", "shop")
        say("Every step passes, so the Deployment rolls out natively and the canary goes away:")
        wait_release(kubeconfig, good, FINAL, "finished")
        show(kubeconfig, "get", "deployments", "-n", "shop")

        wait_for(lambda: jsonpath(kubeconfig, "releasepolicy", "production", "-o",
                                  "jsonpath={.status.violationCount}") == "0",
                 60, "the policy never noticed the fix")
        say("Both services are Ready now, and the policy has no violations left:")
        show(kubeconfig, "get", "serviceownerships,releasepolicies", "-A")
        say("Events the operator posted:")
        show(kubeconfig, "get", "events", "-n", "shop", "--field-selector", "involvedObject.kind=ServiceOwnership")


        say("Next, a bad version (20% errors). Its canary fails the first analysis and Ballast rolls back:")
        ship(kubeconfig, "registry.example.com/shop/recommendations:3.5.0", "0.2")
        wait_release(kubeconfig, "registry.example.com/shop/recommendations:3.5.0", FINAL, "finished")
        print(jsonpath(kubeconfig, "deployment", "recommendations", "-n", "shop", "-o",
                       "jsonpath=recommendations now runs {.spec.template.spec.containers[0].image}"))

        say("Re-applying the rolled-back version is refused until someone sets ballast.dev/retry:")
        refused = ship(kubeconfig, "registry.example.com/shop/recommendations:3.5.0", "0.2", check=False)
        if refused.returncode == 0:
            raise RuntimeError("the rolled-back template was admitted again")

        say("The release history SREs read, and the analysis behind the rollback:")
        show(kubeconfig, "get", "releases", "-n", "shop", "-o", "wide")
        print(jsonpath(kubeconfig, "releases", "-n", "shop", "-o",
                       'jsonpath={range .items[?(@.status.phase=="RolledBack")]}{.metadata.name}: '
                       '{.status.reason}: {.status.message}{"\\n"}{end}'))
        show(kubeconfig, "get", "serviceownership", "recommendations", "-n", "shop", "-o",
             "jsonpath={.status.statistics}")
        print()
    finally:
        operator.stop()
        # With the operator stopped, an Enforce policy's webhooks (failurePolicy Fail) would refuse every
        # change in shop; remove them so the cluster left behind stays usable.
        kubectl(kubeconfig, "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration", "ballast.dev",
                "--ignore-not-found", check=False)

    say(f"""
        Done. The cluster is still running (the operator is not; its webhook configurations were removed):
          export KUBECONFIG={kubeconfig}
          kubectl get serviceownerships,releasepolicies -A
          .venv/bin/ballast operator run --kubeconfig {kubeconfig}-ballast-operator   # run it yourself
          make cluster-down                                            # stop everything
        """)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
