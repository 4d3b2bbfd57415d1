"""The webhook server: kopf's, with its certificate, refusing malformed reviews, and the endpoint the
webhook configurations point the API server at.

The server reads an object's namespace from the AdmissionReview request, not from the object: before
Kubernetes 1.24 ``object.metadata.namespace`` is whatever the client sent.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import kopf
from kopf._cogs.structs import reviews

from ballast.webhooks.certs import write_self_signed
from ballast.webhooks.reviews import CheckedWebhookServer


@dataclass(frozen=True)
class WebhookOptions:
    """How the webhook is served and reached (from the command line)."""

    port: int = 9443
    bind_address: str = "0.0.0.0"
    host: str = "127.0.0.1"
    """Host the API server uses in the webhook URL when no service is given."""
    service: str | None = None
    """``namespace/name`` of the Service in front of the operator, in a cluster."""
    url: str | None = None
    """Base URL the API server calls instead of this replica's own, e.g. a load balancer in front of every
    replica out of a cluster; with several replicas they share one certificate (``cert_dir``)."""
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
    if not isinstance(request, dict):
        return review
    namespace = request.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        return review
    for key in ("object", "oldObject"):
        obj = request.get(key)
        if isinstance(obj, dict) and isinstance(obj.get("metadata", {}), dict):
            obj.setdefault("metadata", {})["namespace"] = namespace
    return review


class WebhookServer(CheckedWebhookServer):
    """kopf's server that refuses malformed reviews, with every review's objects placed in the request's
    namespace (see the module doc), that says when it listens (readiness waits for it), and that closes
    every connection after its answer once draining: a client's kept-alive connection would otherwise
    outlive the replica's removal from the webhook Service, and a request sent on it as the replica stops
    would fail."""

    def __init__(self, *args: Any, listening: asyncio.Event, draining: asyncio.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listening, self.draining = listening, draining

    async def _serve(self, fn: Any, request: aiohttp.web.Request) -> aiohttp.web.Response:  # type: ignore[override]
        response = await super()._serve(fn, request)
        if self.draining.is_set():
            response.force_close()
        return response

    async def __call__(self, fn: reviews.WebhookFn) -> AsyncIterator[reviews.WebhookClientConfig]:
        async def in_request_namespace(request: reviews.Request, **kwargs: Any) -> reviews.Response:
            return await fn(with_request_namespace(request), **kwargs)

        async for config in super().__call__(in_request_namespace):
            self.listening.set()  # kopf yields the configuration once its site has started
            yield config


def build_server(options: WebhookOptions, scratch_dir: Path, listening: asyncio.Event,
                 draining: asyncio.Event) -> tuple[kopf.WebhookServer, Endpoint]:
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
        certfile=str(certfile), pkeyfile=str(keyfile), cafile=str(cafile), listening=listening, draining=draining,
    )
    ca_bundle = base64.b64encode(cafile.read_bytes()).decode()
    if options.service:
        namespace, name = options.service.split("/", 1)
        return server, Endpoint(ca_bundle, service_namespace=namespace, service_name=name)
    return server, Endpoint(ca_bundle, base_url=(options.url or f"https://{options.host}:{options.port}").rstrip("/"))
