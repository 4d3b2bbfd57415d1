"""The webhook server and the ValidatingWebhookConfiguration that points the API server at it.

The operator owns the configuration because its shape follows the policies: one webhook entry per
ReleasePolicy, selecting that policy's namespaces, with ``failurePolicy: Fail`` in Enforce mode (a
stopped operator must not let unchecked workloads in) and ``Ignore`` in Warn/Audit mode (advice must
never block a deploy). Ballast's own objects get one more entry, with ``Ignore``: the CRD schemas
already refuse most mistakes, and an operator outage should not lock platform teams out of their
policies. Releases get their own entry, with ``Fail``: they are the operator's record, only it may
create them or change what they say (status included), and while it is down nobody can act on a release anyway (the
approval stamp already fails closed).

The server reads an object's namespace from the AdmissionReview request, not from the object: before
Kubernetes 1.24 ``object.metadata.namespace`` is whatever the client sent.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf
from kopf._cogs.structs import reviews

from ballast.admission.certs import write_self_signed
from ballast.admission.reviews import CheckedWebhookServer
from ballast.api.common import GROUP, VERSION
from ballast.api.releasepolicy import AdmissionMode, ReleasePolicySpec

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


@dataclass(frozen=True)
class WebhookOptions:
    """How the webhook is served and reached (from the command line)."""

    port: int = 9443
    bind_address: str = "0.0.0.0"
    host: str = "127.0.0.1"
    """Host the API server uses in the webhook URL when no service is given."""
    service: str | None = None
    """``namespace/name`` of the Service in front of the operator, in a cluster."""
    cert_dir: Path | None = None
    """Directory with tls.crt and tls.key (mounted in a cluster); a self-signed pair is made when empty."""


@dataclass(frozen=True)
class Endpoint:
    """Where the API server sends admission reviews, and the CA it trusts for that."""

    ca_bundle: str
    base_url: str | None = None
    service_namespace: str | None = None
    service_name: str | None = None
    service_port: int = 443

    def client_config(self, path: str) -> dict[str, Any]:
        if self.service_name:
            service = {"namespace": self.service_namespace, "name": self.service_name,
                       "path": f"/{path}", "port": self.service_port}
            return {"service": service, "caBundle": self.ca_bundle}
        return {"url": f"{self.base_url}/{path}", "caBundle": self.ca_bundle}


def with_request_namespace(review: Any) -> Any:
    """The review with its objects' namespace set to the request's, for a namespaced request."""
    request = review.get("request") if isinstance(review, dict) else None
    namespace = request.get("namespace") if isinstance(request, dict) else None
    if not isinstance(namespace, str) or not namespace:
        return review
    for key in ("object", "oldObject"):
        obj = request.get(key)
        if isinstance(obj, dict) and isinstance(obj.get("metadata", {}), dict):
            obj.setdefault("metadata", {})["namespace"] = namespace
    return review


class WebhookServer(CheckedWebhookServer):
    """kopf's server that refuses malformed reviews, with every review's objects placed in the request's
    namespace (see the module doc)."""

    async def __call__(self, fn: reviews.WebhookFn) -> AsyncIterator[reviews.WebhookClientConfig]:
        async def in_request_namespace(request: reviews.Request, **kwargs: Any) -> reviews.Response:
            return await fn(with_request_namespace(request), **kwargs)

        async for config in super().__call__(in_request_namespace):
            yield config


def build_server(options: WebhookOptions, scratch_dir: Path) -> tuple[kopf.WebhookServer, Endpoint]:
    """The kopf webhook server and the endpoint description for the webhook configuration."""
    cert_dir = options.cert_dir or scratch_dir
    certfile, keyfile = cert_dir / "tls.crt", cert_dir / "tls.key"
    if not (certfile.exists() and keyfile.exists()):
        hosts = [options.host]
        if options.service:
            namespace, name = options.service.split("/", 1)
            hosts += [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
        paths = write_self_signed(cert_dir, hosts)
        certfile, keyfile = paths.certfile, paths.keyfile
    cafile = cert_dir / "ca.crt" if (cert_dir / "ca.crt").exists() else certfile
    server = WebhookServer(
        addr=options.bind_address, port=options.port, host=options.host,
        certfile=str(certfile), pkeyfile=str(keyfile), cafile=str(cafile),
    )
    ca_bundle = base64.b64encode(cafile.read_bytes()).decode()
    if options.service:
        namespace, name = options.service.split("/", 1)
        return server, Endpoint(ca_bundle, service_namespace=namespace, service_name=name)
    return server, Endpoint(ca_bundle, base_url=f"https://{options.host}:{options.port}")


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


def desired_configurations(
    policies: Sequence[tuple[str, ReleasePolicySpec]],
    endpoint: Endpoint,
    always_exempt: Iterable[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Validating- and MutatingWebhookConfiguration for the given (name, spec) policies."""
    validating = [
        _webhook(f"objects.{GROUP}", endpoint, OBJECTS_WEBHOOK,
                 [_rule(GROUP, VERSION, ["releasepolicies"], "Cluster"),
                  _rule(GROUP, VERSION, ["serviceownerships"], "Namespaced")], fail=False),
        _webhook(f"releases.{GROUP}", endpoint, RELEASES_WEBHOOK,
                 [_rule(GROUP, VERSION, ["releases", "releases/status"], "Namespaced")], fail=True),
    ]
    # Approvals are stamped with the approver's identity; without the stamp there is no approval, so a
    # stopped operator makes approvals wait rather than pass unrecorded.
    mutating = [_webhook(f"approvals.{GROUP}", endpoint, APPROVALS_WEBHOOK,
                         [_rule(GROUP, VERSION, ["releases"], "Namespaced", ("UPDATE",))], fail=True, mutating=True)]
    for name, spec in sorted(policies, key=lambda p: p[0]):
        selector = _governed_selector(spec, always_exempt)
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
         "metadata": _metadata(CONFIGURATION_NAME), "webhooks": validating},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
         "metadata": _metadata(CONFIGURATION_NAME), "webhooks": mutating},
    )
