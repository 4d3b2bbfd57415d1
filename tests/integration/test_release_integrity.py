"""The release engine acts only on what is its own: its canary, its pods, the revision it planned for."""

from __future__ import annotations

from ballast.api.common import GROUP, VERSION
from ballast.api.release import ReleaseSpec
from ballast.controllers.releases import _act
from ballast.kube import client as kube_client
from ballast.kube import deployments
from ballast.release.machine import Action, ActionKind
from tests.harness import wait_for
from tests.integration.kube import OWNERSHIP_ANNOTATIONS, deployment, service_ownership
from tests.integration.releasing import GOOD, change, created, final_release, release_in, releases


def test_a_deployment_named_like_the_canary_is_never_touched_and_the_release_waits(governed, apps, custom):
    namespace = governed
    theirs = deployment("shop-canary", {"app": "shop-canary"}, replicas=1, annotations=OWNERSHIP_ANNOTATIONS)
    wait_for(lambda: created(apps, namespace, theirs), 30, "the team's own Deployment was never admitted")
    before = apps.read_namespaced_deployment("shop-canary", namespace)

    change(apps, namespace, "app:2.0", GOOD)
    blocked = release_in(custom, namespace, ("Blocked",))
    assert blocked["status"]["blockedBy"] == ["canary-name"]
    assert f"Deployment {namespace}/shop-canary exists and is not the canary of Release" in \
        blocked["status"]["message"]
    after = apps.read_namespaced_deployment("shop-canary", namespace)
    assert after.metadata.uid == before.metadata.uid
    assert after.spec.template == before.spec.template and after.spec.replicas == 1
    assert not after.metadata.owner_references

    apps.delete_namespaced_deployment("shop-canary", namespace)
    done = final_release(custom, namespace)
    assert done["status"]["phase"] == "Promoted", done["status"]


def test_a_long_deployment_name_is_released_on_its_own_pods(governed, apps, custom):
    """Pod names are cut to 58 characters (so prefixes cannot tell a long name's canary from its stable pods),
    and label values to 63 (so the Release's labels must be shortened)."""
    namespace = governed
    name = "checkout-payments-authorisation-gateway-eu-west-primary-a1-blue-green"
    assert len(name) > 63
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "serviceownerships",
                                           service_ownership("gateway", {"app": "gateway"}, riskTier="low"))
    body = deployment(name, {"app": "gateway"}, replicas=3, annotations=OWNERSHIP_ANNOTATIONS,
                      template_annotations=GOOD)
    wait_for(lambda: created(apps, namespace, body), 30, "the Deployment was never admitted")
    wait_for(lambda: (apps.read_namespaced_deployment(name, namespace).status.available_replicas or 0) == 3,
             60, "the Deployment never became available")
    change(apps, namespace, "app:2.0", GOOD, name=name)
    done = release_in(custom, namespace, ("Promoted", "RolledBack", "Failed"), deployment_name=name, timeout=120)
    status = done["status"]
    assert status["phase"] == "Promoted", status
    for analysis in status["analyses"]:
        assert analysis["canary"]["requests"] >= 20 and analysis["baseline"]["requests"] > 0, analysis
    assert done["metadata"]["labels"]["ballast.dev/deployment"] != name  # cut to a valid label, still found
    assert len(releases(custom, namespace, name)) == 1


def test_promotion_never_acts_on_a_newer_pending_revision(governed, apps, custom, cluster):
    namespace = governed
    change(apps, namespace, "app:2.0", GOOD)
    release = release_in(custom, namespace, ("Progressing",))
    planned = apps.api_client.sanitize_for_serialization(apps.read_namespaced_deployment("shop", namespace))
    change(apps, namespace, "app:3.0", GOOD)  # a newer change arrives between the plan and the action

    kube_client.configure(cluster.user_kubeconfigs["ballast-operator"])
    acted = _act(Action(ActionKind.PROMOTE), release, planned, ReleaseSpec.model_validate(release["spec"]))
    assert acted is False
    current = apps.read_namespaced_deployment("shop", namespace)
    assert current.spec.template.spec.containers[0].image == "app:3.0"
    assert current.spec.paused is True  # still held: the newer change gets its own release


def test_deleting_a_canary_spares_a_deployment_the_release_does_not_own(governed, apps, cluster):
    namespace = governed
    theirs = deployment("shop-canary", {"app": "other"}, replicas=1, annotations=OWNERSHIP_ANNOTATIONS)
    wait_for(lambda: created(apps, namespace, theirs), 30, "the team's own Deployment was never admitted")
    uid = apps.read_namespaced_deployment("shop-canary", namespace).metadata.uid

    kube_client.configure(cluster.user_kubeconfigs["ballast-operator"])
    deployments.delete_canary(namespace, "shop-canary", release_uid="0d1f2a3b-not-its-owner")
    assert apps.read_namespaced_deployment("shop-canary", namespace).metadata.uid == uid
