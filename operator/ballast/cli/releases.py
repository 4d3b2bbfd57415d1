"""``kubectl ballast approve|abort|promote``: steer a running release through annotations on it.

Who approved is not written here: the operator's webhook stamps the identity the API server
authenticated, and refuses an approval by the person who made the change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
import kubernetes

from ballast.api.common import GROUP, VERSION
from ballast.api.release import FINAL_PHASES, ReleasePhase
from ballast.api.vocabulary import ABORT_ANNOTATION, APPROVE_ANNOTATION, PROMOTE_ANNOTATION
from ballast.cli.common import connect, kubeconfig_option, namespace_option
from ballast.kube.client import DEFAULT_TIMEOUTS

FINAL = {phase.value for phase in FINAL_PHASES}

wait_option = click.option("--wait", "wait_timeout", type=click.IntRange(min=1), default=None, metavar="SECONDS",
                           help="Follow the release until it finishes (at most SECONDS), printing each step; "
                                "the exit status is 0 only if it ends as this command intends.")


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


def progress(status: dict[str, Any]) -> str:
    """One line for where a release stands: phase, step and weight, and the latest analysis or message."""
    parts = [status.get("phase") or "Pending"]
    if status.get("step") is not None:  # an index: people count steps from 1
        parts.append(f"step {status['step'] + 1} at {status.get('weight') or 0}%")
    analyses = status.get("analyses") or []
    latest = analyses[-1] if analyses else None
    if latest and status.get("phase") in ("Progressing", "Promoting"):
        parts.append(f"{latest.get('verdict')}: {latest.get('message')}")
    elif status.get("message"):
        parts.append(status["message"])
    return "  ".join(parts)


class Unfinished(click.ClickException):
    """The release was still running when the time to follow it ran out; ``status`` is where it stood."""

    def __init__(self, message: str, status: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status


def follow(kubeconfig: str | None, namespace: str, release: str, timeout: int,
           echo: Callable[[str], None] = click.echo) -> dict[str, Any]:
    """Watch RELEASE, echo a line whenever its progress changes, and return its final status."""
    client, _ = connect(kubeconfig, namespace)
    api = kubernetes.client.CustomObjectsApi(client)
    last, deadline = "", time.monotonic() + timeout
    status: dict[str, Any] = {}
    while (left := deadline - time.monotonic()) > 0:
        stream = kubernetes.watch.Watch().stream(
            api.list_namespaced_custom_object, GROUP, VERSION, namespace, "releases",
            field_selector=f"metadata.name={release}", timeout_seconds=max(1, int(left)),
            # The server ends the watch after timeout_seconds; the client waits a little longer, not forever.
            _request_timeout=(DEFAULT_TIMEOUTS[0], max(1, int(left)) + DEFAULT_TIMEOUTS[1]))
        for event in stream:
            if event["type"] == "DELETED":
                raise click.ClickException(f"Release {namespace}/{release} was deleted while it was {last}.")
            line = progress(status := event["object"].get("status") or {})
            if line != last:
                echo(f"{datetime.now():%H:%M:%S}  {line}")
                last = line
            if status.get("phase") in FINAL:
                return status
    raise Unfinished(f"Release {namespace}/{release} did not finish within {timeout}s; it is still "
                     f"{last or 'unknown'}. `kubectl ballast describe {release}` shows where it stands.", status)


def _settle(kubeconfig: str | None, namespace: str, release: str, timeout: int | None, wanted: ReleasePhase) -> None:
    if timeout is None:
        return
    phase = follow(kubeconfig, namespace, release, timeout)["phase"]
    if phase != wanted.value:
        raise click.ClickException(f"Release {namespace}/{release} ended {phase}, not {wanted.value}: "
                                   f"`kubectl ballast describe {release}` shows why.")


def _reason(error: kubernetes.client.ApiException) -> str:
    try:
        return json.loads(error.body)["message"]
    except (ValueError, KeyError, TypeError):
        return str(error)


@click.command("approve")
@click.argument("release")
@kubeconfig_option
@namespace_option
@wait_option
def approve(release: str, kubeconfig: str | None, namespace: str | None, wait_timeout: int | None) -> None:
    """Approve RELEASE (its tier requires someone other than the author to)."""
    namespace = _annotate(kubeconfig, namespace, release, APPROVE_ANNOTATION, "true")
    click.echo(f"Release {namespace}/{release} approved.")
    _settle(kubeconfig, namespace, release, wait_timeout, ReleasePhase.PROMOTED)


@click.command("abort")
@click.argument("release")
@click.option("--reason", default="aborted by an operator", show_default=True, help="Why, for the record.")
@kubeconfig_option
@namespace_option
@wait_option
def abort(release: str, reason: str, kubeconfig: str | None, namespace: str | None, wait_timeout: int | None) -> None:
    """Roll RELEASE back now."""
    namespace = _annotate(kubeconfig, namespace, release, ABORT_ANNOTATION, reason)
    click.echo(f"Release {namespace}/{release} is rolling back: {reason}.")
    _settle(kubeconfig, namespace, release, wait_timeout, ReleasePhase.ROLLED_BACK)


@click.command("promote")
@click.argument("release")
@kubeconfig_option
@namespace_option
@wait_option
def promote(release: str, kubeconfig: str | None, namespace: str | None, wait_timeout: int | None) -> None:
    """Skip RELEASE's remaining steps and roll it out (where its tier allows)."""
    namespace = _annotate(kubeconfig, namespace, release, PROMOTE_ANNOTATION, "true")
    click.echo(f"Release {namespace}/{release} is being promoted.")
    _settle(kubeconfig, namespace, release, wait_timeout, ReleasePhase.PROMOTED)
