"""`make demo`: Ballast on the embedded local control plane, narrated.

Starts a fresh local control plane (building it on first use), installs the CRDs and examples/
(one of whose Deployments predates the policy and lacks a runbook), runs the operator and plays the
story a platform team, two service teams and an SRE live through:

1. admission: a change to the non-compliant Deployment is refused with a message naming the rule and
   the fix; once fixed, it is admitted;
2. a good release promoted through canary steps;
3. a bad release rolled back automatically, and refused when re-applied;
4. a freeze: a change to a critical service is refused, then let through by break-glass;
5. an approval: the critical release waits for someone other than its author;
6. the SRE's view: `kubectl ballast status`, `describe` and `scoreboard`.

The cluster stays up afterwards for exploring; `make cluster-down` stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.harness import wait_for
from tests.harness.cluster import DEFAULT_STATE_DIR, REPO_ROOT, ClusterInfo, LocalCluster
from tests.harness.kubectl import kubectl, kubectl_binary
from tests.harness.operator import OperatorProcess

FINAL = ("Promoted", "RolledBack", "Superseded", "Failed")
REGISTRY = "registry.example.com/shop"
RUNBOOK = "https://runbooks.example.com/discovery/recommendations"


def say(text: str) -> None:
    text = textwrap.dedent(text).strip()
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


@dataclass(frozen=True)
class Person:
    """Someone at the keyboard: their kubeconfig, and the name the prompt shows."""

    name: str
    kubeconfig: str

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `kubectl ARGS` visibly as this person: the prompt, then what it printed (errors included).

        `kubectl ballast ...` goes through kubectl's plugin mechanism, which finds `kubectl-ballast` in
        this environment's bin directory.
        """
        print(f"{self.name}$ kubectl {' '.join(args)}", flush=True)
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "NO_COLOR": "1",
               "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        out = subprocess.run([kubectl_binary() or "kubectl", *args], capture_output=True, text=True, env=env)
        print(out.stdout + out.stderr, end="", flush=True)
        if check and out.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed for {self.name}")
        return out

    def get(self, *args: str) -> str:
        """Read something quietly (the demo's own polling, not part of the story)."""
        return kubectl(self.kubeconfig, "get", *args).stdout

    def ship(self, deployment: str, image: str, error_ratio: str, *, annotations: dict[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        """What a service team's `kubectl apply` of a new version amounts to: a new pod template.

        The simulated pods of that template answer ``error_ratio`` of their requests with a 5xx.
        """
        patch = json.dumps(new_version(deployment, image, error_ratio, annotations))
        return self.run("patch", f"deployment/{deployment}", "-n", "shop", "-p", patch, check=check)

    def wait_refused(self, deployment: str, image: str, error_ratio: str) -> None:
        """Wait until the API server calls Ballast's webhook for shop: a new webhook configuration takes a
        moment to reach it, and the story must not race that. Probes with server-side dry runs."""
        patch = json.dumps(new_version(deployment, image, error_ratio))
        wait_for(lambda: kubectl(self.kubeconfig, "patch", f"deployment/{deployment}", "-n", "shop", "-p", patch,
                                 "--dry-run=server", check=False).returncode != 0,
                 60, "the API server never called Ballast's webhook")

    def release_of(self, image: str) -> tuple[str, str]:
        """Name and phase of the newest release that carries ``image``; empty strings while none does."""
        out = self.get("releases", "-n", "shop", "--sort-by=.metadata.creationTimestamp", "-o",
                       "jsonpath={range .items[*]}{.spec.toImages[0]} {.metadata.name} {.status.phase}{\"\\n\"}{end}")
        found = [line.split(" ")[1:] for line in out.splitlines() if line.startswith(f"{image} ")]
        return (found[-1][0], found[-1][1] if len(found[-1]) > 1 else "") if found else ("", "")

    def wait_release(self, image: str, phases: tuple[str, ...], what: str) -> str:
        """Wait until the release of ``image`` is in one of ``phases``; return its name."""
        def reached() -> str | None:
            name, phase = self.release_of(image)
            return name if phase in phases else None
        return wait_for(reached, 120, f"the release of {image} never {what}")

    def wait_policy(self, jsonpath: str, expected: str, what: str) -> None:
        wait_for(lambda: self.get("releasepolicy", "production", "-o", f"jsonpath={jsonpath}") == expected,
                 60, f"the operator never {what}")


def new_version(deployment: str, image: str, error_ratio: str,
                annotations: dict[str, str] | None = None) -> dict[str, object]:
    patch: dict[str, object] = {"spec": {"template": {
        "metadata": {"annotations": {"sim.ballast.dev/error-ratio": error_ratio}},
        "spec": {"containers": [{"name": deployment, "image": image}]}}}}
    if annotations:
        patch["metadata"] = {"annotations": annotations}
    return patch


def expect_refusal(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode == 0:
        raise RuntimeError(f"{what} was admitted; Ballast should have refused it")


def setup(info: ClusterInfo, admin: Person) -> None:
    say("Installing the CRDs generated from the pydantic models.")
    admin.run("apply", "-f", str(REPO_ROOT / "crds"))
    kubectl(info.kubeconfig, "wait", "--for=condition=Established", "--timeout=30s", "crd",
            "-l", "app.kubernetes.io/part-of=ballast")
    say("""
        Applying examples/: a namespace, a ReleasePolicy, two ServiceOwnerships and their Deployments.
        The recommendations Deployment predates Ballast and has no runbook annotation.""")
    admin.run("apply", "-f", str(REPO_ROOT / "examples"))


def status_and_admission(admin: Person, alice: Person) -> None:
    admin.wait_policy("{.status.violationCount}", "1", "audited the ReleasePolicy's namespaces")
    wait_for(lambda: admin.get("serviceownerships", "-n", "shop", "-o",
                               "jsonpath={.items[*].status.workloadCount}").split() == ["1", "1"],
             60, "the operator never computed the ServiceOwnership status")
    say("The status the operator computed: checkout is Ready; recommendations is not, and the policy "
        "counts one violation.")
    admin.run("get", "serviceownerships,releasepolicies", "-A")
    say("Why recommendations is not Ready (its OwnershipComplete condition):")
    print(admin.get("serviceownership", "recommendations", "-n", "shop", "-o",
                    'jsonpath={.status.conditions[?(@.type=="OwnershipComplete")].message}'))

    say("""
        So that this demo takes seconds, not hours, the platform team shortens the canary steps of two tiers
        to 25% then 50% of traffic, 5 seconds each (the example policy says 1 to 5 minutes per step).""")
    quick = {"steps": [25, 50], "stepDuration": "5s", "minRequests": 20}
    admin.run("patch", "releasepolicy", "production", "--type", "merge", "-p",
              json.dumps({"spec": {"tiers": {"low": quick, "critical": quick}}}))

    say("Alice, on the discovery team, ships a new version of recommendations. Ballast refuses it:")
    alice.wait_refused("recommendations", f"{REGISTRY}/recommendations:3.3.0", "0.005")
    expect_refusal(alice.ship("recommendations", f"{REGISTRY}/recommendations:3.3.0", "0.005", check=False),
                   "the change to a Deployment without a runbook")


def promotion(admin: Person, alice: Person) -> None:
    good = f"{REGISTRY}/recommendations:3.3.0"
    say("She adds the runbook the message asks for, and ships again. Admitted, and held: the Deployment is "
        "paused while a canary takes a share of the traffic and Prometheus compares it with the stable pods:")
    alice.run("annotate", "deployment/recommendations", "-n", "shop", f"ballast.dev/runbook={RUNBOOK}")
    alice.ship("recommendations", good, "0.005")
    alice.wait_release(good, ("Progressing",), "started")
    alice.run("get", "deployments", "-n", "shop")
    say("Every step passes, so the Deployment rolls out natively and the canary goes away:")
    alice.wait_release(good, FINAL, "finished")
    alice.run("get", "deployments", "-n", "shop")

    admin.wait_policy("{.status.violationCount}", "0", "noticed the fix")
    say("Both services are Ready now, and the policy has no violations left:")
    admin.run("get", "serviceownerships,releasepolicies", "-A")
    say("Events the operator posted:")
    admin.run("get", "events", "-n", "shop", "--field-selector", "involvedObject.kind=ServiceOwnership")


def rollback(alice: Person) -> str:
    bad = f"{REGISTRY}/recommendations:3.5.0"
    say("Next, a bad version (20% errors). Its canary fails the first analysis and Ballast rolls back:")
    alice.ship("recommendations", bad, "0.2")
    name = alice.wait_release(bad, FINAL, "finished")
    print(alice.get("deployment", "recommendations", "-n", "shop", "-o",
                    "jsonpath=recommendations now runs {.spec.template.spec.containers[0].image}"))
    say("Re-applying the rolled-back version is refused until someone sets ballast.dev/retry:")
    expect_refusal(alice.ship("recommendations", bad, "0.2", check=False), "the rolled-back template")
    return name


def freeze_and_approval(admin: Person, bob: Person, alice: Person) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(minutes=1), now + timedelta(minutes=15)
    window = {"name": "incident-review", "tiers": ["critical"],
              "reason": "Yesterday's checkout outage is under review; critical services stay as they are.",
              "start": start.isoformat().replace("+00:00", "Z"), "end": end.isoformat().replace("+00:00", "Z")}
    say("The platform team opens a freeze on critical services for the next 15 minutes:")
    admin.run("patch", "releasepolicy", "production", "--type", "json", "-p",
              json.dumps([{"op": "add", "path": "/spec/freezeWindows/-", "value": window}]))
    admin.wait_policy("{.status.activeFreezes[*].name}", "incident-review", "reported the open freeze")

    fixed = f"{REGISTRY}/checkout:1.14.3"
    say("Bob, on the payments team, ships a fix to checkout (critical tier). The freeze refuses it:")
    expect_refusal(bob.ship("checkout", fixed, "0.005", check=False), "a change to a frozen tier")
    say("""
        The fix is for a live incident, so Bob breaks glass: ballast.dev/emergency names the incident. Admitted;
        Ballast records who broke glass, as a Warning event and on the Release:""")
    bob.ship("checkout", fixed, "0.005", annotations={"ballast.dev/emergency": "INC-4711 checkout 5xx spike",
                                                       "ballast.dev/change-type": "fix"})
    name = bob.wait_release(fixed, ("AwaitingApproval",), "waited for its approval")
    bob.run("get", "events", "-n", "shop", "--field-selector", "type=Warning,reason=BreakGlass")

    say("checkout is critical, so its release waits for an approval from someone other than its author:")
    bob.run("get", "release", name, "-n", "shop", "-o", "jsonpath={.status.message}{\"\\n\"}")
    expect_refusal(bob.run("ballast", "approve", name, "-n", "shop", check=False), "approving one's own change")
    say("Alice approves it and follows the release (--wait prints each step; it fails unless promoted):")
    alice.run("ballast", "approve", name, "-n", "shop", "--wait", "120")
    bob.wait_release(fixed, FINAL, "finished")
    bob.run("get", "releases", "-n", "shop", "-o", "wide")


def sre_view(sre: Person, rolled_back: str) -> None:
    say("The SRE's view. One row per service: owner, tier, release, last verdict and freeze state:")
    sre.run("ballast", "status", "-n", "shop")
    say("The analysis behind the rollback, step by step:")
    sre.run("ballast", "describe", rolled_back, "-n", "shop")
    say("And the weekly scoreboard, per team and tier (Bob's change the freeze refused counts as blocked by "
        "freeze; the policy's status lists it under freezeRefusals):")
    sre.run("ballast", "scoreboard", "-n", "shop")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.demo", description=__doc__)
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    args = parser.parse_args(argv)

    say("Starting a fresh local control plane (etcd, kube-apiserver, kube-controller-manager, Prometheus).")
    cluster = LocalCluster(args.state_dir)
    cluster.stop()  # a demo always starts from an empty cluster
    info = cluster.start()
    print(f"kubeconfig: {info.kubeconfig}\nPrometheus: {info.prometheus_url}")
    admin = Person("platform", info.kubeconfig)
    alice, bob = (Person(user, info.user_kubeconfigs[user]) for user in ("alice", "bob"))
    setup(info, admin)

    say("Running the operator: `ballast operator run`, as its own identity `ballast-operator`.")
    operator = OperatorProcess(info, Path(args.state_dir) / "logs" / "operator-demo.log")
    operator.start()
    print(f"operator log: {operator.log_path}\noperator metrics: {operator.metrics_url}")
    try:
        status_and_admission(admin, alice)
        promotion(admin, alice)
        rolled_back = rollback(alice)
        freeze_and_approval(admin, bob, alice)
        sre_view(Person("sre", info.kubeconfig), rolled_back)
    finally:
        operator.stop()
        # With the operator stopped, an Enforce policy's webhooks (failurePolicy Fail) would refuse every
        # change in shop; remove them so the cluster left behind stays usable.
        kubectl(info.kubeconfig, "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration",
                "ballast.dev", "--ignore-not-found", check=False)

    say(f"""
        Done. The cluster is still running (the operator is not; its webhook configurations were removed):
          export KUBECONFIG={info.kubeconfig}
          kubectl get serviceownerships,releasepolicies,releases -A
          .venv/bin/ballast operator run --kubeconfig {info.user_kubeconfigs["ballast-operator"]}
          make cluster-down   # stop everything
        """)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
