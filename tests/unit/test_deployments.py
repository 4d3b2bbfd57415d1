"""The pure parts of the release engine's Deployment handling: whose pods, whose canary, which revision."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from ballast.api.revisions import template_hash
from ballast.api.vocabulary import label_value
from ballast.kube.deployments import (
    MAX_GENERATED_PREFIX,
    deployment_pods_pattern,
    owned_by,
    pod_names_pattern,
    pods_of_replica_set,
    stable_revision,
)
from ballast.release.machine import DeploymentView

DNS_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?", fullmatch=True)
HASH = st.from_regex(r"[a-z0-9]{6,10}", fullmatch=True)
SUFFIX = st.from_regex(r"[a-z0-9]{5}", fullmatch=True)


def pod_name(deployment: str, pod_hash: str, suffix: str) -> str:
    """What Kubernetes names a ReplicaSet's pod: the generateName prefix cut to 58, plus 5 characters."""
    return f"{deployment}-{pod_hash}-"[:MAX_GENERATED_PREFIX] + suffix


def pod(deployment: str, pod_hash: str, suffix: str = "abcde", **extra) -> dict:
    return {"metadata": {"name": pod_name(deployment, pod_hash, suffix), "labels": {"pod-template-hash": pod_hash},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": f"{deployment}-{pod_hash}",
                                              "controller": True, "uid": "rs"}], **extra}}


def promql_matches(pattern: str, name: str) -> bool:
    return re.fullmatch(pattern, name) is not None  # PromQL anchors =~ at both ends, like fullmatch


class TestPodsByOwner:
    def test_only_the_replica_sets_own_pods(self):
        pods = [pod("web", "5d8f7c9b4"), pod("web-admin", "5d8f7c9b4"), pod("web-canary", "77f9d"),
                pod("web", "5d8f7c9b4", "zzzzz", deletionTimestamp="2026-11-23T00:00:00Z")]
        assert pods_of_replica_set(pods, "web") == [pod_name("web", "5d8f7c9b4", "abcde")]

    @given(DNS_LABEL, HASH, SUFFIX)
    def test_long_names_keep_their_pods(self, name, pod_hash, suffix):
        """Names of 47+ characters lose their hash to the 58-character cut; the owner still tells."""
        name = (name + "-" + "x" * 60)[:60].strip("-")
        names = pods_of_replica_set([pod(name, pod_hash, suffix)], name)
        assert names == [pod_name(name, pod_hash, suffix)]
        assert promql_matches(pod_names_pattern(names), names[0])

    def test_pattern_matches_exactly_those_names(self):
        pattern = pod_names_pattern(["web-1.a-abcde", "web-2-fghij"])
        assert promql_matches(pattern, "web-1.a-abcde") and promql_matches(pattern, "web-2-fghij")
        assert not promql_matches(pattern, "web-1xa-abcde") and not promql_matches(pattern, "web-2-fghijk")


class TestErrorBudgetPods:
    @given(DNS_LABEL, HASH, SUFFIX)
    def test_a_deployments_pods_match_and_a_longer_names_do_not(self, name, pod_hash, suffix):
        pattern = deployment_pods_pattern([name])
        assert promql_matches(pattern, pod_name(name, pod_hash, suffix))
        if len(f"{name}-admin-") + 11 <= MAX_GENERATED_PREFIX:
            assert not promql_matches(pattern, pod_name(f"{name}-admin", pod_hash, suffix))

    def test_web_is_not_web_admin(self):
        pattern = deployment_pods_pattern(["web"])
        assert promql_matches(pattern, "web-5d8f7c9b4-abcde")
        assert not promql_matches(pattern, "web-admin-5d8f7c9b4-abcde")


class TestLabels:
    @given(st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,250}[a-z0-9])?", fullmatch=True))
    def test_any_deployment_name_is_a_valid_label_value(self, name):
        value = label_value(name)
        assert len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value)
        assert value == name or len(name) > 63

    def test_long_names_stay_apart(self):
        assert label_value("a" * 70) != label_value("a" * 71)


def replica_set(template_image: str, revision: int, pod_hash: str, owner: str = "dep-uid") -> dict:
    return {"metadata": {"ownerReferences": [{"uid": owner}],
                         "annotations": {"deployment.kubernetes.io/revision": str(revision)}},
            "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": pod_hash}},
                                  "spec": {"containers": [{"name": "app", "image": template_image}]}}}}


class TestStableRevision:
    def test_newest_owned_replica_set(self):
        sets = [replica_set("v1", 1, "h1"), replica_set("v2", 2, "h2"), replica_set("v9", 9, "h9", owner="other")]
        assert stable_revision(sets, "dep-uid").pod_template_hash == "h2"

    def test_while_promoting_the_new_revision_is_not_the_stable_one(self):
        sets = [replica_set("v1", 1, "h1"), replica_set("v2", 2, "h2")]
        new = template_hash({"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "app", "image": "v2"}]}})
        assert stable_revision(sets, "dep-uid", excluding=new).pod_template_hash == "h1"

    def test_owned_by_is_by_uid_not_by_name(self):
        body = {"metadata": {"ownerReferences": [{"name": "web-abc", "uid": "u1"}]}}
        assert owned_by(body, "u1") and not owned_by(body, "u2") and not owned_by({"metadata": {}}, "u1")


def test_a_rollout_past_its_progress_deadline_is_stalled():
    body = {"metadata": {"generation": 4, "annotations": {}},
            "spec": {"replicas": 3, "template": {}},
            "status": {"observedGeneration": 4, "replicas": 4, "updatedReplicas": 1, "availableReplicas": 3,
                       "conditions": [{"type": "Progressing", "status": "False",
                                       "reason": "ProgressDeadlineExceeded"}]}}
    view = DeploymentView.from_body(body)
    assert view.stalled and not view.rolled_out
    body["status"]["observedGeneration"] = 3  # a condition about an older generation says nothing yet
    assert not DeploymentView.from_body(body).stalled
