"""The Validating- and MutatingWebhookConfiguration that point the API server at the webhooks.

The operator owns the configurations because its shape follows the policies: one webhook entry per
ReleasePolicy, selecting that policy's namespaces, with ``failurePolicy: Fail`` in Enforce mode (a
stopped operator must not let unchecked workloads in) and ``Ignore`` in Warn/Audit mode (advice must
never block a deploy). Ballast's own objects get one more entry, with ``Ignore``: the CRD schemas
already refuse most mistakes, and an operator outage should not lock platform teams out of their
policies. Releases get their own entry, with ``Fail``: they are the operator's record, only it may
create them or change what they say (status included), and while it is down nobody can act on a release anyway (the
approval stamp already fails closed).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ballast.api.common import GROUP, VERSION
from ballast.api.releasepolicy import AdmissionMode, ReleasePolicySpec
from ballast.api.shards import Shard, within_shard
from ballast.webhooks.server import Endpoint

CONFIGURATION_NAME = "ballast.dev"
WORKLOADS_WEBHOOK = "workloads"
"""kopf handler id, and so the URL path, of workload validation."""
OBJECTS_WEBHOOK = "objects"
"""kopf handler id, and so the URL path, of ReleasePolicy/ServiceOwnership validation."""
RELEASES_WEBHOOK = "releases"
"""kopf handler id, and so the URL path, of Release validation."""
PAUSE_WEBHOOK = "pause"
"""kopf handler id, and so the URL path, of the mutation that pauses a changed Deployment."""
APPROVALS_WEBHOOK = "approvals"
"""kopf handler id, and so the URL path, of the mutation that stamps an approver's identity."""
TIMEOUT_SECONDS = 5


def _rule(group: str, version: str, resources: list[str], scope: str,
          operations: tuple[str, ...] = ("CREATE", "UPDATE")) -> dict[str, Any]:
    return {"apiGroups": [group], "apiVersions": [version], "operations": list(operations),
            "resources": resources, "scope": scope}


def _webhook(name: str, endpoint: Endpoint, path: str, rules: list[dict[str, Any]], fail: bool,
             namespace_selector: dict[str, Any] | None = None, mutating: bool = False) -> dict[str, Any]:
    webhook = {
        "name": name,
        "clientConfig": endpoint.client_config(path),
        "rules": rules,
        "failurePolicy": "Fail" if fail else "Ignore",
        # Break-glass events are written by the operator, and never for dry runs.
        "sideEffects": "NoneOnDryRun",
        "admissionReviewVersions": ["v1", "v1beta1"],
        "timeoutSeconds": TIMEOUT_SECONDS,
        "matchPolicy": "Equivalent",
    }
    if namespace_selector is not None:
        webhook["namespaceSelector"] = namespace_selector
    if mutating:
        # Should a later mutating webhook change the pod template, run again so the pause still holds.
        webhook["reinvocationPolicy"] = "IfNeeded"
    return webhook


def _governed_selector(spec: ReleasePolicySpec, always_exempt: Iterable[str]) -> dict[str, Any]:
    selector = spec.namespace_selector.to_wire()
    # Exemptions by name: effective from Kubernetes 1.21 (which labels every namespace with its name);
    # on older servers the handlers apply them, as they always do.
    exempt = sorted({*always_exempt, *spec.admission.exempt_namespaces})
    selector.setdefault("matchExpressions", []).append(
        {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": exempt})
    return selector


def _metadata(name: str) -> dict[str, Any]:
    return {"name": name, "labels": {"app.kubernetes.io/name": "ballast", "app.kubernetes.io/part-of": "ballast"}}


def configuration_name(shard: Shard | None = None) -> str:
    """The name of the operator's webhook configurations: a shard's own, so shards never replace each other's."""
    return f"{shard.name}.{CONFIGURATION_NAME}" if shard is not None else CONFIGURATION_NAME


def desired_configurations(
    policies: Sequence[tuple[str, ReleasePolicySpec]],
    endpoint: Endpoint,
    always_exempt: Iterable[str],
    shard: Shard | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Validating- and MutatingWebhookConfiguration for the given (name, spec) policies.

    A shard's send it only its own namespaces' requests (and every ReleasePolicy's: they have no namespace,
    and every shard judges them alike).
    """

    def ours(selector: dict[str, Any]) -> dict[str, Any]:
        return within_shard(selector, shard) if shard is not None else selector

    everywhere = ours({}) or None
    validating = [
        _webhook(f"objects.{GROUP}", endpoint, OBJECTS_WEBHOOK,
                 [_rule(GROUP, VERSION, ["releasepolicies"], "Cluster"),
                  _rule(GROUP, VERSION, ["serviceownerships"], "Namespaced")], fail=False,
                 namespace_selector=everywhere),
        _webhook(f"releases.{GROUP}", endpoint, RELEASES_WEBHOOK,
                 [_rule(GROUP, VERSION, ["releases", "releases/status"], "Namespaced")], fail=True,
                 namespace_selector=everywhere),
    ]
    # Approvals are stamped with the approver's identity; without the stamp there is no approval, so a
    # stopped operator makes approvals wait rather than pass unrecorded.
    mutating = [_webhook(f"approvals.{GROUP}", endpoint, APPROVALS_WEBHOOK,
                         [_rule(GROUP, VERSION, ["releases"], "Namespaced", ("UPDATE",))], fail=True, mutating=True,
                         namespace_selector=everywhere)]
    for name, spec in sorted(policies, key=lambda p: p[0]):
        selector = ours(_governed_selector(spec, always_exempt))
        enforce = spec.admission.mode is AdmissionMode.ENFORCE
        validating.append(_webhook(
            f"{name}.workloads.{GROUP}", endpoint, WORKLOADS_WEBHOOK,
            [_rule("apps", "v1", ["deployments", "statefulsets", "daemonsets"], "Namespaced")],
            fail=enforce, namespace_selector=selector,
        ))
        mutating.append(_webhook(
            f"{name}.pause.{GROUP}", endpoint, PAUSE_WEBHOOK,
            [_rule("apps", "v1", ["deployments"], "Namespaced")],
            fail=enforce, namespace_selector=selector, mutating=True,
        ))
    return (
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
         "metadata": _metadata(configuration_name(shard)), "webhooks": validating},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": _metadata(configuration_name(shard)), "webhooks": mutating},
    )
