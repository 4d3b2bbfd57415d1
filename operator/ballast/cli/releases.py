"""``kubectl ballast approve|abort|promote``: steer a running release through annotations on it.

Who approved is not written here: the operator's webhook stamps the identity the API server
authenticated, and refuses an approval by the person who made the change.
"""

from __future__ import annotations

import json

import click
import kubernetes

from ballast.api.common import GROUP, VERSION
from ballast.cli.common import connect, kubeconfig_option, namespace_option
from ballast.release.requests import ABORT_ANNOTATION, APPROVE_ANNOTATION, PROMOTE_ANNOTATION


def _annotate(kubeconfig: str | None, namespace: str | None, release: str, key: str, value: str) -> str:
    client, namespace = connect(kubeconfig, namespace)
    api = kubernetes.client.CustomObjectsApi(client)
    try:
        api.patch_namespaced_custom_object(GROUP, VERSION, namespace, "releases", release,
                                           {"metadata": {"annotations": {key: value}}})
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise click.ClickException(f"Release {namespace}/{release} does not exist: `kubectl get releases "
                                       f"-n {namespace}` lists them.") from None
        raise click.ClickException(_reason(error)) from None
    return namespace


def _reason(error: kubernetes.client.ApiException) -> str:
    try:
        return json.loads(error.body)["message"]
    except (ValueError, KeyError, TypeError):
        return str(error)


@click.command("approve")
@click.argument("release")
@kubeconfig_option
@namespace_option
def approve(release: str, kubeconfig: str | None, namespace: str | None) -> None:
    """Approve RELEASE (its tier requires someone other than the author to)."""
    namespace = _annotate(kubeconfig, namespace, release, APPROVE_ANNOTATION, "true")
    click.echo(f"Release {namespace}/{release} approved.")


@click.command("abort")
@click.argument("release")
@click.option("--reason", default="aborted by an operator", show_default=True, help="Why, for the record.")
@kubeconfig_option
@namespace_option
def abort(release: str, reason: str, kubeconfig: str | None, namespace: str | None) -> None:
    """Roll RELEASE back now."""
    namespace = _annotate(kubeconfig, namespace, release, ABORT_ANNOTATION, reason)
    click.echo(f"Release {namespace}/{release} is rolling back: {reason}.")


@click.command("promote")
@click.argument("release")
@kubeconfig_option
@namespace_option
def promote(release: str, kubeconfig: str | None, namespace: str | None) -> None:
    """Skip RELEASE's remaining steps and roll it out (where its tier allows)."""
    namespace = _annotate(kubeconfig, namespace, release, PROMOTE_ANNOTATION, "true")
    click.echo(f"Release {namespace}/{release} is being promoted.")
