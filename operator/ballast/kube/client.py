"""Kubernetes client configuration and status writes.

Everything here is blocking (the official client is synchronous); async callers wrap calls in
``asyncio.to_thread``. Every call made through :func:`api_client` has a client-side deadline, so an
API server (or etcd behind it) that hangs costs a thread a bounded time, never forever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import kopf
import kubernetes

from ballast.api.common import GROUP, VERSION

DEFAULT_TIMEOUTS = (5.0, 15.0)
"""(connect, read) seconds of every Kubernetes API call: generous for one object, bounded for a hang."""

_timeouts = DEFAULT_TIMEOUTS
_client: kubernetes.client.ApiClient | None = None


class DeadlineApiClient(kubernetes.client.ApiClient):
    """An ApiClient that gives every call a (connect, read) deadline unless the caller sets its own."""

    def __init__(self, timeouts: tuple[float, float],
                 configuration: kubernetes.client.Configuration | None = None) -> None:
        super().__init__(configuration)
        self.timeouts = timeouts

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = self.timeouts
        return super().call_api(*args, **kwargs)


def configure(kubeconfig: str | None, timeouts: tuple[float, float] = DEFAULT_TIMEOUTS) -> None:
    """Point this process's Kubernetes client at one cluster, with these client-side deadlines.

    An explicit kubeconfig wins; then ``$KUBECONFIG``/``~/.kube/config``; then the in-cluster
    service account. kopf authenticates from the same configuration (see :func:`connection_info`).
    """
    global _timeouts, _client
    try:
        kubernetes.config.load_kube_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"))
    except kubernetes.config.ConfigException:
        kubernetes.config.load_incluster_config()
    _timeouts, _client = timeouts, None


def api_client() -> kubernetes.client.ApiClient:
    """The process's shared API client (one connection pool), every call with a deadline."""
    global _client
    if _client is None:
        _client = DeadlineApiClient(_timeouts)
    return _client


def request_timeouts() -> tuple[float, float]:
    """The (connect, read) deadlines :func:`configure` set."""
    return _timeouts


def connection_info() -> kopf.ConnectionInfo:
    """kopf's credentials from the client configuration :func:`configure` loaded.

    kopf's own login would re-read the default kubeconfig location instead of the one given.
    """
    config = kubernetes.client.Configuration.get_default_copy()
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    scheme, _, token = (header or "").rpartition(" ")
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        scheme=scheme or None,
        token=token or None,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


@dataclass(frozen=True)
class CustomObjectRef:
    """Names one Ballast custom object."""

    plural: str
    name: str
    namespace: str | None = None


def merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``.

    Keys missing from ``new`` become null; a null in ``new`` for a key ``old`` lacks is no change.
    """
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {key: None for key in old if key not in new}
    for key, value in new.items():
        if value is None and key not in old:
            continue
        if key not in old or old[key] != value:
            patch[key] = merge_patch(old.get(key), value)
    return patch


def update_status(
    ref: CustomObjectRef,
    current: dict[str, Any] | None,
    owned: dict[str, Any],
    resource_version: str | None = None,
) -> bool:
    """Set the status fields this caller owns to ``owned``, leaving other writers' fields alone.

    Sends nothing and returns False when the fields already hold these values. With
    ``resource_version`` the write is optimistic: the API server refuses it (409) if the object
    changed since it was read, so a stale computation never overwrites a newer one.
    """
    current = current or {}
    before = {key: current[key] for key in owned if key in current}
    patch = merge_patch(before, owned)
    if not patch:
        return False
    body: dict[str, Any] = {"status": patch}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    # The client sends custom-object patches as application/merge-patch+json.
    api = kubernetes.client.CustomObjectsApi(api_client())
    if ref.namespace is None:
        api.patch_cluster_custom_object_status(
            GROUP, VERSION, ref.plural, ref.name, body
        )
    else:
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, ref.namespace, ref.plural, ref.name, body
        )
    return True


def whoami() -> str | None:
    """The username the API server sees for this process's token (a TokenReview), or None if unknown.

    The operator needs it to tell its own Deployment writes (restores, un-pauses) from people's.
    """
    config = kubernetes.client.Configuration.get_default_copy()
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    token = (header or "").rpartition(" ")[2]
    if not token:
        return None
    try:
        review = kubernetes.client.AuthenticationV1Api(api_client()).create_token_review({"spec": {"token": token}})
    except kubernetes.client.ApiException:
        return None
    return review.status.user.username if review.status and review.status.authenticated else None
