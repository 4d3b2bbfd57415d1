"""`make demo`: Ballast on the embedded local control plane, narrated, on real pods where the machine can.

Starts a fresh local control plane (building it on first use) and, where this machine can run one, a
real node beside it (containerd, kubelet, kube-proxy, kube-scheduler; tests/harness/node.py), imports the
demo app's image (built from Debian packages on first use), applies the demo's services as real pods with
real users sending them requests (tests/harness/loadgen.py), runs the operator and plays the story a
platform team, two service teams and an SRE live through:

1. admission: a change to the non-compliant Deployment is refused with a message naming the rule and
   the fix; once fixed, it is admitted;
2. a good release promoted through canary steps: `kubectl get pods -o wide` shows the canary pod with its
   real IP, and the pods' own /metrics (as Prometheus scraped them) show it taking its share of the traffic;
3. a bad release rolled back automatically on the real 5xx its canary answered users, and refused when
   re-applied;
4. a freeze: a change to a critical service is refused, then let through by break-glass;
5. an approval: the critical release waits for someone other than its author;
6. the SRE's view: `kubectl ballast status`, `describe` and `scoreboard`.

The services are the ones `make kind-demo` deploys (examples/01-04 and deploy/kind/demo-app.yaml), so
what runs here is what a kind user runs. `--pods auto` (the default) falls back to simulated pods and
traffic (podsim, trafficsim; examples/05-deployments.yaml) where the real node cannot start, saying why;
under CI=true that fails instead, since CI must show the real thing. `--pods real` insists, `--pods
simulated` never tries.

The cluster (and the node) stay up afterwards for exploring; `make cluster-down` stops them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import yaml

from ballast.api.vocabulary import CANARY_TRACK, TRACK_LABEL
from tests.harness import images, wait_for
from tests.harness.cluster import DEFAULT_STATE_DIR, REPO_ROOT, ClusterInfo, LocalCluster
from tests.harness.kubectl import kubectl, kubectl_binary
from tests.harness.loadgen import LoadGenerator, errors
from tests.harness.node import LocalNode, NodeUnavailable, problems
from tests.harness.operator import OperatorProcess

FINAL = ("Promoted", "RolledBack", "Superseded", "Failed")
REGISTRY = "registry.example.com/shop"
"""Where the simulated pods' images would come from (never pulled: podsim runs nothing)."""
RUNBOOK = "https://runbooks.example.com/discovery/recommendations"
NAMESPACE = "shop"
SERVICES = ("checkout", "recommendations")

EXAMPLES = REPO_ROOT / "examples"
KIND = REPO_ROOT / "deploy" / "kind"
GOVERNANCE = (EXAMPLES / "01-namespace-shop.yaml", EXAMPLES / "02-releasepolicy-production.yaml",
              EXAMPLES / "03-serviceownership-checkout.yaml", EXAMPLES / "04-serviceownership-recommendations.yaml")
"""The namespace, the platform team's policy and the service teams' ownerships: the same on every path."""
REAL_SERVICES = KIND / "demo-app.yaml"
"""The demo's Deployments and Services on real pods: what `make kind-demo` applies too."""
SIMULATED_SERVICES = EXAMPLES / "05-deployments.yaml"
"""The same Deployments for podsim and trafficsim, where no real node can run."""

CHART = REPO_ROOT / "charts" / "ballast"
CHART_VALUES = KIND / "values.yaml"
"""The chart's values on the real node: what `make kind-demo` installs it with (only Prometheus's URL differs)."""
OPERATOR_NAMESPACE = "ballast-system"

USERS_RPS = 30
"""Requests a second each service gets from its users: with two stable pods the canary takes about a third,
~10 a second, well above the demo tier's minRequests (20) within a 5 s step."""


def say(text: str) -> None:
    text = textwrap.dedent(text).strip()
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


class DemoUnavailable(Exception):
    """The demo cannot run as asked: `--pods real` (or CI=true) where the real node cannot start."""


@dataclass(frozen=True)
class Pods:
    """Where the demo's services run: real pods on the local node, or pods that podsim and trafficsim play.

    Decides which manifests the demo applies and what shipping a version changes in a pod template.
    """

    real: bool

    @property
    def manifests(self) -> tuple[Path, ...]:
        return (*GOVERNANCE, REAL_SERVICES if self.real else SIMULATED_SERVICES)

    def template(self, deployment: str, version: str, error_ratio: str) -> dict[str, object]:
        """The pod template of `version` of a service whose requests fail at `error_ratio`.

        Real pods run the demo app's one image; a version is its env (VERSION, ERROR_RATIO), as on kind.
        Simulated pods are told their error ratio by an annotation (trafficsim), and their image names the
        version, as a registry's tags would.
        """
        if self.real:
            env = [{"name": "VERSION", "value": version}, {"name": "ERROR_RATIO", "value": error_ratio}]
            return {"spec": {"containers": [{"name": deployment, "env": env}]}}
        return {"metadata": {"annotations": {"sim.ballast.dev/error-ratio": error_ratio}},
                "spec": {"containers": [{"name": deployment, "image": f"{REGISTRY}/{deployment}:{version}"}]}}


def choose_pods(requested: str, unable: list[str], ci: bool) -> tuple[Pods, str]:
    """Real or simulated pods for `--pods requested`, given why the real node cannot run here (`unable`).

    Returns the choice and what to tell the user about it; raises DemoUnavailable where the choice is
    not ours to make (`real` insisted, or CI=true, where a silent fallback would hide a broken install).
    """
    if requested == "simulated":
        return Pods(real=False), "Simulated pods, as asked (--pods simulated): podsim and trafficsim play them."
    if not unable:
        return Pods(real=True), ""
    reasons = "; ".join(unable)
    if requested == "real" or ci:
        why = "--pods real" if requested == "real" else "CI=true"
        raise DemoUnavailable(f"The real node cannot start on this machine ({reasons}), and {why} forbids falling "
                              "back to simulated pods. Fix what is named, or run `make demo PODS=simulated`.")
    return Pods(real=False), (f"No real node on this machine ({reasons}). Playing the demo on simulated pods "
                              "instead: podsim marks them Ready and trafficsim plays their users. Fix what is "
                              "named for real pods, or run `make demo PODS=simulated` to skip this check.")


@dataclass(frozen=True)
class Person:
    """Someone at the keyboard: their kubeconfig, and the name the prompt shows."""

    name: str
    kubeconfig: str
    pods: Pods

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

    def ship(self, deployment: str, version: str, error_ratio: str, *, annotations: dict[str, str] | None = None,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        """What a service team's `kubectl apply` of a new version amounts to: a new pod template."""
        patch = json.dumps(self.change(deployment, version, error_ratio, annotations))
        return self.run("patch", f"deployment/{deployment}", "-n", NAMESPACE, "-p", patch, check=check)

    def change(self, deployment: str, version: str, error_ratio: str,
               annotations: dict[str, str] | None = None) -> dict[str, object]:
        patch: dict[str, object] = {"spec": {"template": self.pods.template(deployment, version, error_ratio)}}
        if annotations:
            patch["metadata"] = {"annotations": annotations}
        return patch

    def wait_refused(self, deployment: str, version: str, error_ratio: str) -> None:
        """Wait until the API server calls Ballast's webhook for shop: a new webhook configuration takes a
        moment to reach it, and the story must not race that. Probes with server-side dry runs."""
        patch = json.dumps(self.change(deployment, version, error_ratio))
        wait_for(lambda: kubectl(self.kubeconfig, "patch", f"deployment/{deployment}", "-n", NAMESPACE, "-p", patch,
                                 "--dry-run=server", check=False).returncode != 0,
                 60, "the API server never called Ballast's webhook")

    def releases(self, deployment: str) -> list[tuple[str, str]]:
        """(name, phase) of the Releases of `deployment`, oldest first."""
        out = self.get("releases", "-n", NAMESPACE, "--sort-by=.metadata.creationTimestamp", "-o",
                       "jsonpath={range .items[*]}{.metadata.name} {.spec.deployment} {.status.phase}{\"\\n\"}{end}")
        rows = [line.split(" ") for line in out.splitlines()]
        return [(row[0], row[2] if len(row) > 2 else "") for row in rows if row[1] == deployment]

    def release_names(self, deployment: str) -> set[str]:
        return {name for name, _ in self.releases(deployment)}

    def wait_release(self, deployment: str, before: set[str], phases: tuple[str, ...], what: str) -> str:
        """Wait until the Release opened for `deployment` after `before` (its names then) is in one of
        `phases`; return its name."""
        def reached() -> str | None:
            new = [(name, phase) for name, phase in self.releases(deployment) if name not in before]
            if len(new) > 1:  # the story would go on with one of them while the other waits forever
                opened = ", ".join(f"{name} ({phase or 'no phase'})" for name, phase in new)
                raise RuntimeError(f"Ballast opened {len(new)} Releases for one change of {deployment}: {opened}")
            return new[-1][0] if new and new[-1][1] in phases else None
        return wait_for(reached, 180, f"the new release of {deployment} never {what}")

    def wait_policy(self, jsonpath: str, expected: str, what: str) -> None:
        wait_for(lambda: self.get("releasepolicy", "production", "-o", f"jsonpath={jsonpath}") == expected,
                 60, f"the operator never {what}")


def expect_refusal(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode == 0:
        raise RuntimeError(f"{what} was admitted; Ballast should have refused it")


# -- real pods: the node, the image, the users, and what the pods answered ---------------------------------

def start_real_node(cluster: LocalCluster) -> LocalNode:
    """Start the node and import the demo app's and the operator's images into its containerd.

    NodeUnavailable, with the node stopped again, where an image cannot be built here."""
    say("""
        Starting a real node beside it: containerd, the CNI bridge, kubelet, kube-proxy and kube-scheduler
        (the first run builds kubelet, kube-proxy and kube-scheduler: about 4-9 minutes, cached after).""")
    node = LocalNode(cluster)
    node.start()
    print(f"node {node.name} Ready in {node.ready_seconds or 0:.0f}s; its logs: {node.dir / 'logs'}")
    say(f"""
        Importing the demo app's image {images.DEMO_APP_IMAGE} (deploy/kind/demo-app) and the operator's,
        {images.OPERATOR_IMAGE} (the Dockerfile's final stage), into its containerd. The first run builds them
        from Debian packages and the project's wheel, without Docker (about 2-3 minutes; cached in
        {images.CACHE_DIR}).""")
    started = time.monotonic()
    try:
        for archive in (images.demo_app_archive, images.operator_archive):
            images.import_archive(node.ctr, archive())
    except images.ImageBuildError as exc:
        node.stop()
        raise NodeUnavailable(f"the images cannot be built here: {exc}") from exc
    print(f"images ready in {time.monotonic() - started:.0f}s")
    return node


class Users:
    """The services' users on real pods: USERS_RPS requests a second to each Service's ClusterIP through
    kube-proxy, every answer counted (tests/harness/loadgen.py; the kind demo's loadgen pod sends the same)."""

    def __init__(self, admin: Person) -> None:
        self.load: dict[str, LoadGenerator] = {}
        for service in SERVICES:
            ip = admin.get("service", service, "-n", NAMESPACE, "-o", "jsonpath={.spec.clusterIP}")
            self.load[service] = LoadGenerator(f"http://{ip}/", USERS_RPS)

    def start(self) -> None:
        for service, load in self.load.items():
            load.start()
            wait_for(lambda load=load: load.counts().get(200, 0) > 0, 60,
                     f"kube-proxy never routed {load.url} ({service}) to a pod")
        print(", ".join(f"{service}: {load.url} at {USERS_RPS:g}/s" for service, load in self.load.items()))

    def stop(self) -> None:
        for load in self.load.values():
            load.stop()

    def saw(self, service: str, since: float) -> str:
        """What `service`'s users got for the requests they sent since `since` (time.monotonic())."""
        counts = self.load[service].counts(since=since)
        by_status = ", ".join(f"{n} x {status or 'no answer'}" for status, n in counts.items())
        return f"{sum(counts.values())} requests, {errors(counts)} failed ({by_status})"


def traffic_by_pod(prometheus_url: str, deployment: str, seconds: float) -> dict[str, dict[str, float]]:
    """Requests each pod of `deployment` answered in the last `seconds`, by status code, as Prometheus scraped
    them from the pods' own /metrics (the series the release's analysis reads)."""
    promql = (f'sum by (pod, code) (increase(http_requests_total{{namespace="{NAMESPACE}",'
              f'pod=~"{deployment}-.*"}}[{max(int(seconds), 5)}s]))')
    response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    found: dict[str, dict[str, float]] = {}
    for series in response.json()["data"]["result"]:
        found.setdefault(series["metric"]["pod"], {})[series["metric"]["code"]] = float(series["value"][1])
    return found


def traffic_table(deployment: str, by_pod: dict[str, dict[str, float]]) -> str:
    """`traffic_by_pod` as a table: each pod's track, requests, share of the service's requests and 5xx.

    Pods that answered nothing in the window (an earlier release's canary, a pod just started) are left out."""
    total = sum(sum(codes.values()) for codes in by_pod.values()) or 1.0
    canary = f"{deployment}-canary-"
    lines = [f"{'POD':<44} {'TRACK':<7} {'REQUESTS':>8} {'SHARE':>6} {'5XX':>5}"]
    for pod, codes in sorted(by_pod.items(), key=lambda item: (not item[0].startswith(canary), item[0])):
        answered = sum(codes.values())
        if answered < 0.5:
            continue
        failed = sum(n for code, n in codes.items() if code.startswith("5"))
        lines.append(f"{pod:<44} {'canary' if pod.startswith(canary) else 'stable':<7} {answered:>8.0f} "
                     f"{answered / total:>6.0%} {failed:>5.0f}")
    return "\n".join(lines)


def show_traffic(info: ClusterInfo, users: Users, deployment: str, shipped: float) -> None:
    seconds = time.monotonic() - shipped
    say(f"What each {deployment} pod answered since the change ({seconds:.0f} s), from the pods' own /metrics as "
        "Prometheus scraped them, and what the users saw:")
    print(traffic_table(deployment, traffic_by_pod(info.prometheus_url, deployment, seconds)))
    print(f"users of {deployment}: {users.saw(deployment, shipped)}")


def canary_serving(admin: Person, deployment: str, before: set[str]) -> bool:
    """A canary pod of `deployment` is Ready (so in the Service), or its release already ended."""
    selector = f"app.kubernetes.io/name={deployment},{TRACK_LABEL}={CANARY_TRACK}"
    ready = admin.get("pods", "-n", NAMESPACE, "-l", selector,
                      "-o", 'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}')
    ended = [phase for name, phase in admin.releases(deployment) if name not in before and phase in FINAL]
    return "True" in ready.split() or bool(ended)


@contextmanager
def real_services(info: ClusterInfo, admin: Person) -> Iterator[Users]:
    """Wait for the demo's real pods, show them with their IPs, and send them users while the story runs."""
    for service in SERVICES:
        admin.run("rollout", "status", f"deployment/{service}", "-n", NAMESPACE, "--timeout=180s")
    say("Real pods, scheduled by kube-scheduler onto the node, with IPs on its CNI bridge:")
    admin.run("get", "pods", "-n", NAMESPACE, "-o", "wide")
    say(f"Their users: {USERS_RPS} requests a second to each Service's ClusterIP, through kube-proxy.")
    users = Users(admin)
    try:
        users.start()
        yield users
    finally:
        users.stop()


# -- the story ---------------------------------------------------------------------------------------------

def setup(info: ClusterInfo, admin: Person) -> None:
    say("Installing the CRDs generated from the pydantic models.")
    admin.run("apply", "-f", str(REPO_ROOT / "crds"))
    kubectl(info.kubeconfig, "wait", "--for=condition=Established", "--timeout=30s", "crd",
            "-l", "app.kubernetes.io/part-of=ballast")
    services = (f"{REAL_SERVICES.relative_to(REPO_ROOT)}, as make kind-demo does" if admin.pods.real
                else SIMULATED_SERVICES.relative_to(REPO_ROOT))
    say(f"""
        Applying examples/ (a namespace, a ReleasePolicy, two ServiceOwnerships) and the services they govern
        ({services}). The recommendations Deployment predates Ballast and has no runbook annotation.""")
    admin.run("apply", *(arg for path in admin.pods.manifests for arg in ("-f", str(path))))


def status_and_admission(admin: Person, alice: Person) -> None:
    admin.wait_policy("{.status.violationCount}", "1", "audited the ReleasePolicy's namespaces")
    wait_for(lambda: admin.get("serviceownerships", "-n", NAMESPACE, "-o",
                               "jsonpath={.items[*].status.workloadCount}").split() == ["1", "1"],
             60, "the operator never computed the ServiceOwnership status")
    say("The status the operator computed: checkout is Ready; recommendations is not, and the policy "
        "counts one violation.")
    admin.run("get", "serviceownerships,releasepolicies", "-A")
    say("Why recommendations is not Ready (its OwnershipComplete condition):")
    print(admin.get("serviceownership", "recommendations", "-n", NAMESPACE, "-o",
                    'jsonpath={.status.conditions[?(@.type=="OwnershipComplete")].message}'))

    say("""
        So that this demo takes seconds, not hours, the platform team shortens the canary steps of two tiers
        to 25% then 50% of traffic, 5 seconds each (the example policy says 1 to 5 minutes per step). So that
        it tells the same story on any day, it also sets the example's weekend and year-end freezes aside.""")
    quick = {"steps": [25, 50], "stepDuration": "5s", "minRequests": 20}
    admin.run("patch", "releasepolicy", "production", "--type", "merge", "-p",
              json.dumps({"spec": {"tiers": {"low": quick, "critical": quick}, "freezeWindows": []}}))

    say("Alice, on the discovery team, ships a new version of recommendations. Ballast refuses it:")
    alice.wait_refused("recommendations", "3.3.0", "0.005")
    expect_refusal(alice.ship("recommendations", "3.3.0", "0.005", check=False),
                   "the change to a Deployment without a runbook")


def promotion(info: ClusterInfo, admin: Person, alice: Person, users: Users | None) -> None:
    say("She adds the runbook the message asks for, and ships again. Admitted, and held: the Deployment is "
        "paused while a canary takes a share of the traffic and Prometheus compares it with the stable pods:")
    alice.run("annotate", "deployment/recommendations", "-n", NAMESPACE, f"ballast.dev/runbook={RUNBOOK}")
    before, shipped = alice.release_names("recommendations"), time.monotonic()
    alice.ship("recommendations", "3.3.0", "0.005")
    alice.wait_release("recommendations", before, ("Progressing",), "started")
    alice.run("get", "deployments", "-n", NAMESPACE)
    if users is not None:
        wait_for(lambda: canary_serving(alice, "recommendations", before), 90, "no canary pod ever became Ready")
        say("The canary is a real pod beside the stable ones, in the same Service:")
        alice.run("get", "pods", "-n", NAMESPACE, "-o", "wide", "-l", "app.kubernetes.io/name=recommendations",
                  "-L", TRACK_LABEL)
    say("Every step passes, so the Deployment rolls out natively and the canary goes away:")
    name = alice.wait_release("recommendations", before, FINAL, "finished")
    alice.run("get", "deployments", "-n", NAMESPACE)
    if users is not None:
        show_traffic(info, users, "recommendations", shipped)
    if dict(alice.releases("recommendations"))[name] != "Promoted":
        raise RuntimeError(f"the good release {name} was not promoted; `kubectl ballast describe {name} -n shop`")

    admin.wait_policy("{.status.violationCount}", "0", "noticed the fix")
    say("Both services are Ready now, and the policy has no violations left:")
    admin.run("get", "serviceownerships,releasepolicies", "-A")
    say("Events the operator posted:")
    admin.run("get", "events", "-n", NAMESPACE, "--field-selector", "involvedObject.kind=ServiceOwnership")


def rollback(info: ClusterInfo, alice: Person, users: Users | None) -> str:
    say("Next, a bad version (20% errors). Its canary fails the first analysis and Ballast rolls back:")
    before, shipped = alice.release_names("recommendations"), time.monotonic()
    alice.ship("recommendations", "3.5.0", "0.2")
    name = alice.wait_release("recommendations", before, FINAL, "finished")
    if dict(alice.releases("recommendations"))[name] != "RolledBack":
        raise RuntimeError(f"the bad release {name} was not rolled back; `kubectl ballast describe {name} -n shop`")
    version = ('{.spec.template.spec.containers[0].env[?(@.name=="VERSION")].value}' if alice.pods.real
               else "{.spec.template.spec.containers[0].image}")
    running = alice.get("deployment", "recommendations", "-n", NAMESPACE, "-o", f"jsonpath={version}")
    print(f"recommendations now runs {running}")
    if users is not None:
        show_traffic(info, users, "recommendations", shipped)
    say("Re-applying the rolled-back version is refused until someone sets ballast.dev/retry:")
    expect_refusal(alice.ship("recommendations", "3.5.0", "0.2", check=False), "the rolled-back template")
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

    say("Bob, on the payments team, ships a fix to checkout (critical tier). The freeze refuses it:")
    expect_refusal(bob.ship("checkout", "1.14.3", "0.005", check=False), "a change to a frozen tier")
    say("""
        The fix is for a live incident, so Bob breaks glass: ballast.dev/emergency names the incident. Admitted;
        Ballast records who broke glass, as a Warning event and on the Release:""")
    before = bob.release_names("checkout")
    bob.ship("checkout", "1.14.3", "0.005", annotations={"ballast.dev/emergency": "INC-4711 checkout 5xx spike",
                                                          "ballast.dev/change-type": "fix"})
    name = bob.wait_release("checkout", before, ("AwaitingApproval",), "waited for its approval")
    bob.run("get", "events", "-n", NAMESPACE, "--field-selector", "type=Warning,reason=BreakGlass")

    say("checkout is critical, so its release waits for an approval from someone other than its author:")
    bob.run("get", "release", name, "-n", NAMESPACE, "-o", "jsonpath={.status.message}{\"\\n\"}")
    expect_refusal(bob.run("ballast", "approve", name, "-n", NAMESPACE, check=False), "approving one's own change")
    say("Alice approves it and follows the release (--wait prints each step; it fails unless promoted):")
    alice.run("ballast", "approve", name, "-n", NAMESPACE, "--wait", "180")
    bob.wait_release("checkout", before, FINAL, "finished")
    bob.run("get", "releases", "-n", NAMESPACE, "-o", "wide")


def sre_view(sre: Person, rolled_back: str) -> None:
    say("The SRE's view. One row per service: owner, tier, release, last verdict and freeze state:")
    sre.run("ballast", "status", "-n", NAMESPACE)
    say("The analysis behind the rollback, step by step:")
    sre.run("ballast", "describe", rolled_back, "-n", NAMESPACE)
    say("And the weekly scoreboard, per team and tier (Bob's change the freeze refused counts as blocked by "
        "freeze; the policy's status lists it under freezeRefusals):")
    sre.run("ballast", "scoreboard", "-n", NAMESPACE)


def real_pod_problems(info: ClusterInfo) -> list[str]:
    """Why the demo cannot use real pods here: the node's own reasons, and what the chart needs besides."""
    found = problems()
    if not info.host_address:
        found.append("this machine has no default route, so pods could not reach the API server or Prometheus")
    if importlib.util.find_spec("helm_sdkpy") is None:
        found.append("helm-sdkpy is missing (`make install` adds it): it installs Ballast's chart on the node")
    return found


def start_pods(cluster: LocalCluster, info: ClusterInfo, requested: str) -> tuple[Pods, LocalNode | None]:
    """Start the real node and import the images where this machine can; else say why and simulate."""
    ci = os.environ.get("CI") == "true"
    pods, message = choose_pods(requested, [] if requested == "simulated" else real_pod_problems(info), ci)
    if pods.real:
        try:
            return pods, start_real_node(cluster)
        except NodeUnavailable as exc:  # found only at start: another node runs here, a build failed
            pods, message = choose_pods(requested, [str(exc)], ci)
    say(message)
    return pods, None


def chart_values(prometheus_url: str) -> dict[str, object]:
    """deploy/kind/values.yaml, with which `make kind-demo` installs the chart, and Prometheus where pods reach
    it here (kind's runs in the cluster at the chart's default URL; here Debian's runs on the host)."""
    return {**yaml.safe_load(CHART_VALUES.read_text()), "prometheusUrl": prometheus_url}


@contextmanager
def chart_installed(info: ClusterInfo, admin: Person) -> Iterator[None]:
    """Ballast installed by its chart on the real node with deploy/kind/values.yaml, as `make kind-demo` does;
    left running afterwards, like the rest of the cluster."""
    import helm_sdkpy as helm  # only here: the simulated path runs without it

    values = chart_values(info.pod_prometheus_url)
    values_file = CHART_VALUES.relative_to(REPO_ROOT)
    say(f"""
        Installing Ballast with its Helm chart and the values make kind-demo uses ({values_file}):
        two operator Pods under the chart's ServiceAccount, electing a leader; the API server calls their webhooks
        through the chart's Service. Only Prometheus's address differs from kind: here it runs on the host.""")
    print(f"platform$ helm install ballast charts/ballast -n {OPERATOR_NAMESPACE} --create-namespace "
          f"-f {values_file} --set prometheusUrl={values['prometheusUrl']}", flush=True)
    kubectl(info.kubeconfig, "create", "namespace", OPERATOR_NAMESPACE)
    # ServiceAccount admission refuses pods until the namespace's default ServiceAccount has its token.
    wait_for(lambda: admin.get("serviceaccount", "default", "-n", OPERATOR_NAMESPACE, "--ignore-not-found",
                               "-o", "jsonpath={.secrets[*].name}"), 60, f"{OPERATOR_NAMESPACE} never got a token")
    config = helm.Configuration(namespace=OPERATOR_NAMESPACE, kubeconfig=info.kubeconfig)
    asyncio.run(helm.Install(config).run("ballast", str(CHART), values=values, wait=False, timeout=60))
    admin.run("rollout", "status", "deployment/ballast", "-n", OPERATOR_NAMESPACE, "--timeout=180s")
    admin.run("get", "pods", "-n", OPERATOR_NAMESPACE, "-o", "wide", "-L", "ballast.dev/leader")
    yield


@contextmanager
def operator_process(info: ClusterInfo, state_dir: str) -> Iterator[None]:
    """The operator as a process on the host, for simulated pods; stopped afterwards."""
    say("Running the operator: `ballast operator run`, as its own identity `ballast-operator`.")
    operator = OperatorProcess(info, Path(state_dir) / "logs" / "operator-demo.log")
    operator.start()
    print(f"operator log: {operator.log_path}\noperator metrics: {operator.metrics_url}")
    try:
        yield
    finally:
        operator.stop()
        # With the operator stopped, an Enforce policy's webhooks (failurePolicy Fail) would refuse every
        # change in shop; remove them so the cluster left behind stays usable.
        kubectl(info.kubeconfig, "delete", "validatingwebhookconfiguration,mutatingwebhookconfiguration",
                "ballast.dev", "--ignore-not-found", check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR))
    parser.add_argument("--pods", choices=("auto", "real", "simulated"), default="auto",
                        help="real pods on a local node (real), simulated ones (simulated), or real where this "
                             "machine can run the node, saying why not otherwise (auto; fails under CI=true)")
    args = parser.parse_args(argv)

    say("Starting a fresh local control plane (etcd, kube-apiserver, kube-controller-manager, Prometheus).")
    cluster = LocalCluster(args.state_dir)
    LocalNode(cluster).stop()  # a demo always starts from an empty cluster (the node first: it drains through it)
    cluster.stop()
    info = cluster.start()
    print(f"kubeconfig: {info.kubeconfig}\nPrometheus: {info.prometheus_url}")
    try:
        pods, node = start_pods(cluster, info, args.pods)
    except DemoUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    admin = Person("platform", info.kubeconfig, pods)
    alice, bob = (Person(user, info.user_kubeconfigs[user], pods) for user in ("alice", "bob"))
    setup(info, admin)

    # Simulated pods need no users started: trafficsim plays them.
    with (real_services(info, admin) if pods.real else nullcontext()) as users, \
            (chart_installed(info, admin) if pods.real else operator_process(info, args.state_dir)):
        status_and_admission(admin, alice)
        promotion(info, admin, alice, users)
        rolled_back = rollback(info, alice, users)
        freeze_and_approval(admin, bob, alice)
        sre_view(Person("sre", info.kubeconfig, pods), rolled_back)

    running = (f"its real node {node.name} and Ballast, installed by its chart in {OPERATOR_NAMESPACE}, keep "
               "running" if node else "the operator is not: its webhook configurations were removed")
    say(f"""
        Done. The cluster is still running ({running}):
          export KUBECONFIG={info.kubeconfig}
          kubectl get serviceownerships,releasepolicies,releases -A
          make cluster-down   # stop everything
        """)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
