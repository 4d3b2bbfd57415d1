"""Releases end to end: the real API server, the real operator, real Prometheus, simulated pods and users."""

from __future__ import annotations

import json

import kubernetes
import pytest

from ballast.api.common import GROUP, VERSION
from tests.harness import wait_for
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, ballast, deployment
from tests.integration.releasing import (
    BAD,
    FINAL,
    GOOD,
    canary_gone,
    change,
    final_release,
    govern,
    image_of,
    release_in,
    releases,
)


def test_good_release_is_promoted(governed, apps, custom):
    namespace = governed
    paused = change(apps, namespace, "app:2.0", GOOD)
    assert paused.spec.paused is True  # the webhook held the Deployment; nothing rolled yet

    release = final_release(custom, namespace)
    status = release["status"]
    assert status["phase"] == "Promoted", status
    assert [a["verdict"] for a in status["analyses"]] == ["Pass", "Pass"]
    assert [a["weight"] for a in status["analyses"]] == [25, 50]
    assert all(a["canary"]["requests"] >= 20 for a in status["analyses"])
    spec = release["spec"]
    assert (spec["tier"], spec["service"], spec["owner"]) == ("low", "shop", "payments")
    assert spec["toImages"] == ["app:2.0"] and spec["fromImages"] == ["registry.example.com/app:1.0"]
    assert spec["changedBy"]["username"] == "admin"

    assert image_of(apps, namespace) == "app:2.0"

    def statistics():
        so = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop")
        status = so.get("status") or {}
        return status if (status.get("statistics") or {}).get("releases") == 1 else None
    so_status = wait_for(statistics, 30, "the ServiceOwnership never counted the release")
    assert so_status["lastRelease"] == {"name": release["metadata"]["name"], "phase": "Promoted"}
    assert so_status["statistics"]["changeFailureRate"] == 0.0 and "currentRelease" not in so_status
    current = apps.read_namespaced_deployment("shop", namespace)
    assert not current.spec.paused and "ballast.dev/pending-revision" not in (current.metadata.annotations or {})
    wait_for(lambda: canary_gone(apps, namespace), 30, "the canary was never deleted")


def test_bad_release_rolls_back_and_its_template_is_refused_until_retry(governed, apps, custom):
    namespace = governed
    change(apps, namespace, "app:2.0-bad", BAD)
    release = final_release(custom, namespace)
    status = release["status"]
    assert status["phase"] == "RolledBack", status
    assert status["reason"] == "AnalysisFailed"
    # Rolled back at the first step with enough data: windows before the Fail could only lack data.
    verdicts = [(a["step"], a["verdict"]) for a in status["analyses"]]
    assert verdicts[-1] == (0, "Fail") and all(v == (0, "Inconclusive") for v in verdicts[:-1]), verdicts
    assert image_of(apps, namespace) == "registry.example.com/app:1.0"
    assert not apps.read_namespaced_deployment("shop", namespace).spec.paused
    wait_for(lambda: canary_gone(apps, namespace), 30, "the canary was never deleted")

    with pytest.raises(kubernetes.client.ApiException) as caught:
        change(apps, namespace, "app:2.0-bad", BAD)
    assert "which Ballast rolled back" in caught.value.body and "rule rolled-back-revision" in caught.value.body

    change(apps, namespace, "app:2.0-bad", BAD, annotations={"ballast.dev/retry": "with-fix-flag"})
    retried = wait_for(lambda: len(releases(custom, namespace)) == 2 and releases(custom, namespace)[1], 30,
                       "the retry never became a release")
    assert retried["metadata"]["name"].endswith("-2")
    assert retried["spec"]["toRevision"] == release["spec"]["toRevision"]


def test_crash_looping_release_rolls_back_with_canary_not_ready(governed, apps, custom):
    namespace = governed
    change(apps, namespace, "app:2.0-crash", {"sim.ballast.dev/never-ready": "true"})
    release = final_release(custom, namespace)
    assert release["status"]["phase"] == "RolledBack"
    assert release["status"]["reason"] == "CanaryNotReady"
    assert image_of(apps, namespace) == "registry.example.com/app:1.0"


def test_critical_release_waits_for_an_approval_that_is_not_the_authors(governed, apps, custom, cluster):
    namespace = governed
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop",
                                          {"spec": {"riskTier": "critical"}})
    wait_for(lambda: _tier_is(custom, namespace, "critical"), 10, "tier change not visible")
    change(apps, namespace, "app:3.0", GOOD)
    waiting = release_in(custom, namespace, ("AwaitingApproval",))
    name = waiting["metadata"]["name"]
    assert "kubectl ballast approve" in waiting["status"]["message"]

    own = ballast(cluster.kubeconfig, "approve", name, "-n", namespace)
    assert own.returncode != 0
    assert "was changed by admin, who cannot also approve it (four eyes)" in own.stderr

    # --wait follows the release to its end, a line per step, and succeeds only if it is promoted.
    other = ballast(cluster.user_kubeconfigs["alice"], "approve", name, "-n", namespace, "--wait", "120")
    assert other.returncode == 0, other.stderr
    lines = other.stdout.splitlines()
    assert lines[0] == f"Release {namespace}/{name} approved."
    assert any("Progressing  step 2 at 50%  Pass: " in line for line in lines), lines
    assert "  Promoted  " in lines[-1], lines
    done = final_release(custom, namespace)
    assert done["status"]["phase"] == "Promoted"
    assert done["status"]["approvedBy"]["username"] == "alice"
    assert done["spec"]["changedBy"]["username"] == "admin"


def _tier_is(custom, namespace, tier):
    so = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop")
    return so["spec"]["riskTier"] == tier


def test_concurrency_limit_queues_the_second_release(governed, apps, custom):
    namespace = governed
    for name in ("first", "second"):  # no ServiceOwnership selects them: medium tier, one at a time
        body = deployment(name, {"app": name}, replicas=2, annotations=OWNERSHIP_ANNOTATIONS,
                          template_annotations=GOOD)
        apps.create_namespaced_deployment(namespace, body)
    for name in ("first", "second"):
        wait_for(lambda n=name: (apps.read_namespaced_deployment(n, namespace).status.available_replicas or 0) == 2,
                 60, f"{name} never became available")
    change(apps, namespace, "app:2.0", GOOD, name="first")
    release_in(custom, namespace, ("Progressing",), deployment_name="first")
    change(apps, namespace, "app:2.0", GOOD, name="second")
    blocked = release_in(custom, namespace, ("Blocked",), deployment_name="second")
    assert f"namespace {namespace}" in blocked["status"]["message"]
    assert "allows 1 at once" in blocked["status"]["message"]

    first = release_in(custom, namespace, FINAL, deployment_name="first")
    second = release_in(custom, namespace, FINAL, deployment_name="second")
    assert (first["status"]["phase"], second["status"]["phase"]) == ("Promoted", "Promoted")
    assert second["status"]["startedAt"] >= first["status"]["finishedAt"]


def test_a_second_change_supersedes_the_running_release(governed, apps, custom):
    namespace = governed
    change(apps, namespace, "app:2.0", GOOD)
    release_in(custom, namespace, ("Progressing",))
    change(apps, namespace, "app:2.1", GOOD)
    final_release(custom, namespace, count=2)

    def by_image(image):
        return next(r for r in releases(custom, namespace) if r["spec"]["toImages"] == [image])

    assert by_image("app:2.0")["status"]["phase"] == "Superseded"
    wait_for(lambda: by_image("app:2.1").get("status", {}).get("phase") in FINAL, 90, "replacement never ended")
    assert by_image("app:2.1")["status"]["phase"] == "Promoted"
    assert image_of(apps, namespace) == "app:2.1"


def test_prometheus_down_makes_verdicts_errors_and_never_promotes(governed, apps, custom, local_cluster):
    namespace = governed
    change(apps, namespace, "app:2.0", GOOD)
    release_in(custom, namespace, ("Progressing",))
    local_cluster.stop_prometheus()
    try:
        release = final_release(custom, namespace)
    finally:
        local_cluster.start_prometheus()
    status = release["status"]
    assert (status["phase"], status["reason"]) == ("RolledBack", "AnalysisError"), status
    assert "Pass" not in {a["verdict"] for a in status["analyses"]}
    assert status["analyses"][-1]["verdict"] == "Error"
    assert "metrics provider could not be asked" in status["analyses"][-1]["message"]
    assert image_of(apps, namespace) == "registry.example.com/app:1.0"


def test_operator_killed_mid_release_resumes_without_repeating_or_skipping(governed, apps, custom, operator):
    namespace = governed
    change(apps, namespace, "app:2.0", GOOD)
    release_in(custom, namespace, ("Progressing",))
    wait_for(lambda: not canary_gone(apps, namespace), 30, "the canary never appeared")
    operator.kill()
    operator.start()
    release = final_release(custom, namespace)
    status = release["status"]
    assert status["phase"] == "Promoted", status
    analyses = status["analyses"]
    # Every step passed exactly once, in order (an Inconclusive window, e.g. while Prometheus warms up
    # again, is repeated by design), and no window was recorded twice.
    assert [(a["step"], a["verdict"]) for a in analyses if a["verdict"] != "Inconclusive"] == [
        (0, "Pass"), (1, "Pass")], analyses
    windows = [(a["step"], a["verdict"], a["windowStart"], a["windowEnd"]) for a in analyses]
    assert len({a["windowStart"] for a in analyses}) == len(analyses), windows
    assert image_of(apps, namespace) == "app:2.0"


def test_spent_error_budget_blocks_features_but_not_break_glass(governed, apps, custom):
    namespace = governed
    # 0.5% of requests fail; a 99.9% objective allows 0.1%: the budget is overspent.
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop",
                                          {"spec": {"slo": {"availability": 0.999, "window": "1m"}}})

    def spent():
        so = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships", "shop")
        remaining = (so.get("status") or {}).get("errorBudgetRemaining")
        return remaining is not None and remaining < 0
    wait_for(spent, 60, "the ServiceOwnership never reported its budget spent")

    change(apps, namespace, "app:2.0", GOOD)
    blocked = release_in(custom, namespace, ("Blocked",))
    assert "error budget of service shop is spent" in blocked["status"]["message"]

    change(apps, namespace, "app:2.0-hotfix", GOOD, annotations={"ballast.dev/emergency": "INC-7"})
    wait_for(lambda: len(releases(custom, namespace)) == 2, 30, "the break-glass change was never recorded")
    emergency = next(r for r in releases(custom, namespace) if r["spec"]["toImages"] == ["app:2.0-hotfix"])
    assert emergency["spec"]["emergency"] == "INC-7"
    wait_for(lambda: next(r for r in releases(custom, namespace) if r["spec"]["toImages"] == ["app:2.0-hotfix"]
                          ).get("status", {}).get("phase") == "Promoted", 90, "the break-glass release never ended")


def test_the_sre_plugin_reads_the_release_history(governed, apps, custom, cluster):
    namespace = governed
    change(apps, namespace, "app:2.0", GOOD)
    final_release(custom, namespace)
    change(apps, namespace, "app:2.1-bad", BAD)
    rolled_back = final_release(custom, namespace, count=2)
    assert rolled_back["status"]["phase"] == "RolledBack"

    status = ballast(cluster.kubeconfig, "status", "-n", namespace, "-o", "json")
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)
    assert (row["service"], row["owner"], row["tier"], row["phase"], row["last_verdict"], row["frozen"]) == (
        "shop", "payments", "low", "RolledBack", "Fail", "no")

    history = ballast(cluster.kubeconfig, "history", "shop", "-n", namespace, "-o", "json")
    rows = json.loads(history.stdout)
    assert [(r["phase"], r["to"], r["author"]) for r in rows] == [
        ("Promoted", "app:2.0", "admin"), ("RolledBack", "app:2.1-bad", "admin")]

    describe = ballast(cluster.kubeconfig, "describe", rolled_back["metadata"]["name"], "-n", namespace)
    assert describe.returncode == 0, describe.stderr
    assert "Images:      app:2.0 -> app:2.1-bad" in describe.stdout
    assert "Fail" in describe.stdout and "Reason:      AnalysisFailed" in describe.stdout
    assert "errors (" in describe.stdout  # the numbers behind each verdict

    board = ballast(cluster.kubeconfig, "scoreboard", "-n", namespace, "-o", "csv", "--since", "1h")
    lines = board.stdout.strip().splitlines()
    assert lines[0].startswith("team,tier,releases,promoted,rolled_back")
    team, tier, releases_, promoted, rolled_back_, *_ = lines[1].split(",")
    assert (team, tier, releases_, promoted, rolled_back_) == ("payments", "low", "2", "1", "1")


def test_only_the_newest_finished_releases_are_kept(custom, apps, namespace, operator):
    """``releaseHistoryLimit`` keeps the newest records of a Deployment; the older ones are deleted."""
    policy = govern(custom, apps, namespace, releaseHistoryLimit=2)
    try:
        promoted = []
        for image in ("app:2.0", "app:3.0", "app:4.0"):
            change(apps, namespace, image, GOOD)

            def done(image=image):
                mine = [r for r in releases(custom, namespace) if r["spec"]["toImages"] == [image]]
                return mine[0] if mine and (mine[0].get("status") or {}).get("phase") in FINAL else None
            release = wait_for(done, 90, f"the release of {image} never finished")
            assert release["status"]["phase"] == "Promoted", release["status"]
            promoted.append(release["metadata"]["name"])
        wait_for(lambda: [r["metadata"]["name"] for r in releases(custom, namespace)] == promoted[1:], 30,
                 f"the oldest release {promoted[0]} was never deleted")
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "releasepolicies", policy)
