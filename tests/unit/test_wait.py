"""`kubectl ballast wait`: which Release records a Deployment's change, and how each outcome ends the command."""

from __future__ import annotations

import click
import pytest
import yaml
from click.testing import CliRunner

from ballast.api.revisions import template_hash
from ballast.cli.main import cli
from ballast.cli.wait import Exit, outcome, parse_target, release_of, unfinished

UID = "d-uid"
OLD = {"spec": {"containers": [{"name": "app", "image": "app:1"}]}}
NEW = {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}


def deployment(template, pending=False):
    annotations = {"ballast.dev/pending-revision": template_hash(template)} if pending else {}
    return {"metadata": {"name": "shop", "uid": UID, "annotations": annotations}, "spec": {"template": template}}


def release(name, to, phase=None, created="2026-11-24T10:00:00Z", from_=OLD, uid=UID, managed=True):
    return {"metadata": {"name": name, "creationTimestamp": created,
                         "labels": {"app.kubernetes.io/managed-by": "ballast"} if managed else {},
                         "ownerReferences": [{"kind": "Deployment", "uid": uid}]},
            "spec": {"toRevision": template_hash(to), "fromRevision": template_hash(from_)},
            "status": {"phase": phase} if phase else {}}


@pytest.mark.parametrize(("target", "expected"), [
    ("deployment/shop", ("deployment", "shop")), ("deploy/shop", ("deployment", "shop")),
    ("deployments.apps/shop", ("deployment", "shop")), ("Deployment/shop", ("deployment", "shop")),
    ("release/shop-1a2b3c4d5e", ("release", "shop-1a2b3c4d5e")),
    ("releases.ballast.dev/shop-1", ("release", "shop-1")),
])
def test_targets_take_kubectl_spellings(target, expected):
    assert parse_target(target) == expected


@pytest.mark.parametrize("target", ["shop", "pod/shop", "deployment/", "statefulset/db"])
def test_other_targets_are_usage_errors(target):
    with pytest.raises(click.BadParameter, match="give deployment/NAME or release/NAME"):
        parse_target(target)


def test_a_pending_change_is_followed_only_by_a_running_release_of_its_template():
    held = deployment(NEW, pending=True)
    assert release_of(held, []) is None  # not recorded yet: wait for it
    # An earlier attempt at the same template that rolled back is not this change (a retry makes a new one).
    earlier = release("shop-new", NEW, "RolledBack", created="2026-11-24T09:00:00Z")
    assert release_of(held, [earlier]) is None
    retry = release("shop-new-2", NEW, "Progressing", created="2026-11-24T10:00:00Z")
    assert release_of(held, [earlier, retry]) == "shop-new-2"
    assert release_of(held, [release("shop-new-2", NEW)]) == "shop-new-2"  # created, no status yet


def test_releases_that_are_not_the_operators_for_this_deployment_never_count():
    held = deployment(NEW, pending=True)
    assert release_of(held, [release("forged", NEW, "Progressing", managed=False)]) is None
    assert release_of(held, [release("other", NEW, "Progressing", uid="someone-else")]) is None


def test_once_nothing_is_pending_the_newest_release_that_put_the_template_there_counts():
    running = deployment(OLD)  # after a rollback the Deployment runs the old template again
    promoted_long_ago = release("shop-old", OLD, "Promoted", created="2026-11-20T10:00:00Z", from_={})
    rolled_back = release("shop-new", NEW, "RolledBack", created="2026-11-24T10:00:00Z")
    assert release_of(running, [promoted_long_ago, rolled_back]) == "shop-new"
    assert release_of(running, [promoted_long_ago, release("shop-new", NEW, "RollingBack")]) == "shop-new"
    assert release_of(running, [promoted_long_ago]) == "shop-old"
    # Promoting: the webhook's mark is gone and the template is the new one.
    promoting = deployment(NEW)
    assert release_of(promoting, [promoted_long_ago, release("shop-new", NEW, "Promoting")]) == "shop-new"
    # A release that left the template elsewhere (superseded, say) says nothing about the current one.
    assert release_of(running, [release("shop-new", NEW, "Superseded")]) is None


@pytest.mark.parametrize(("status", "code", "words"), [
    ({"phase": "Promoted", "message": "Revision abc is rolled out on every replica."}, Exit.PROMOTED, "was promoted"),
    ({"phase": "RolledBack", "reason": "AnalysisFailed"}, Exit.ROLLED_BACK, "was rolled back (AnalysisFailed)"),
    ({"phase": "RolledBack", "reason": "CanaryNotReady"}, Exit.ROLLED_BACK, "kubectl ballast describe shop-1"),
    ({"phase": "RolledBack", "reason": "Aborted"}, Exit.ABORTED, "was aborted and rolled back"),
    ({"phase": "Superseded", "reason": "Superseded"}, Exit.SUPERSEDED, "follows the newer one"),
    ({"phase": "Failed", "reason": "DeploymentDeleted"}, Exit.FAILED, "failed (DeploymentDeleted)"),
])
def test_each_outcome_has_its_own_exit_status_and_says_why(status, code, words):
    got, sentence = outcome("ns", "shop-1", status)
    assert got is code and words in sentence and sentence.startswith("Release ns/shop-1 ")


def test_exit_statuses_are_distinct_and_documented():
    assert len({int(e) for e in Exit}) == len(Exit) and 2 not in {int(e) for e in Exit}
    help_text = CliRunner().invoke(cli, ["wait", "--help"]).output
    for status in Exit:
        assert f"  {int(status)}  " in help_text


@pytest.mark.parametrize(("phase", "code"), [
    ("Blocked", Exit.HELD), ("AwaitingApproval", Exit.HELD), ("Pending", Exit.TIMED_OUT),
    ("Progressing", Exit.TIMED_OUT), ("Promoting", Exit.TIMED_OUT), ("RollingBack", Exit.TIMED_OUT),
    (None, Exit.TIMED_OUT),
])
def test_running_out_of_time_tells_a_held_release_from_a_slow_one(phase, code):
    assert unfinished({"phase": phase} if phase else {}) is code


def test_a_bad_target_is_a_usage_error():
    result = CliRunner().invoke(cli, ["wait", "shop"])
    assert result.exit_code == 2 and "give deployment/NAME or release/NAME" in result.output


def test_an_unreachable_api_server_is_a_sentence_not_a_traceback(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],  # nothing listens on port 1
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "shop"}}]}))
    result = CliRunner().invoke(cli, ["wait", "deployment/web", "--kubeconfig", str(kubeconfig), "--timeout", "5"])
    assert result.exit_code == Exit.CANNOT_FOLLOW
    assert "Could not follow deployment/web in namespace shop: the API server did not answer" in result.output
