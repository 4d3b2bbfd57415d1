"""``kubectl ballast wait``: follow the release a plain ``kubectl apply`` started, and exit by its outcome.

A pipeline applies a Deployment as it always has, then gates on ``kubectl ballast wait deployment/<name>``.
The change is held by the time ``kubectl apply`` returns (the mutating webhook paused the Deployment and
marked it pending in the same request), so ``wait`` knows at once whether Ballast holds it; the Release
that records it follows within moments, and ``wait`` watches for it with a deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from enum import IntEnum
from functools import partial
from typing import Any

import click
import kubernetes
import urllib3

from ballast.api.common import GROUP, VERSION
from ballast.api.release import FINAL_PHASES, ReleasePhase, created_by_operator
from ballast.api.revisions import template_hash
from ballast.api.vocabulary import DEPLOYMENT_LABEL, PENDING_ANNOTATION, label_value
from ballast.cli.common import connect, kubeconfig_option, namespace_option
from ballast.cli.releases import Unfinished, follow, progress
from ballast.kube.client import DEFAULT_TIMEOUTS


class Exit(IntEnum):
    """The exit statuses of ``wait``, one per outcome a pipeline may want to tell apart (see ``--help``)."""

    PROMOTED = 0
    CANNOT_FOLLOW = 1
    """No such object, a change Ballast does not hold, the Release deleted, the API server unreachable."""
    # 2 is click's, for usage errors.
    ROLLED_BACK = 3
    ABORTED = 4
    SUPERSEDED = 5
    HELD = 6
    """Still Blocked or AwaitingApproval when the time ran out: a person or a gate must act."""
    TIMED_OUT = 7
    """Still in progress (or not yet recorded) when the time ran out."""
    FAILED = 8


KINDS = {"deployment": "deployment", "deployments": "deployment", "deploy": "deployment",
         "deployment.apps": "deployment", "deployments.apps": "deployment",
         "release": "release", "releases": "release", "release.ballast.dev": "release",
         "releases.ballast.dev": "release"}
FINAL = {phase.value for phase in FINAL_PHASES}
HELD_PHASES = {ReleasePhase.BLOCKED.value, ReleasePhase.AWAITING_APPROVAL.value}


def parse_target(target: str) -> tuple[str, str]:
    """``deployment/NAME`` or ``release/NAME`` (kubectl's spellings too) as (deployment|release, NAME)."""
    kind, _, name = target.partition("/")
    if kind.lower() not in KINDS or not name:
        raise click.BadParameter(f"{target!r}: give deployment/NAME or release/NAME", param_hint="TARGET")
    return KINDS[kind.lower()], name


def _created(release: Mapping[str, Any]) -> tuple[str, str]:
    metadata = release.get("metadata") or {}
    return metadata.get("creationTimestamp") or "", metadata.get("name") or ""


def release_of(deployment: Mapping[str, Any], releases: Iterable[Mapping[str, Any]]) -> str | None:
    """The name of the Release that records the change the Deployment carries now, or None while none does.

    A pending change (marked by the webhook until its release ends) is recorded by a running Release of the
    Deployment's current template; a finished one with that template is an earlier attempt (a rollback
    retried). Once nothing is pending, the newest Release that put the current template there counts: the one
    that introduced it, or the one that rolled back to it. Only Releases the operator made for this very
    Deployment (owner UID) count.
    """
    revision = template_hash((deployment.get("spec") or {}).get("template"))
    pending = PENDING_ANNOTATION in ((deployment.get("metadata") or {}).get("annotations") or {})
    candidates = []
    for release in releases:
        if not created_by_operator(release, deployment):
            continue
        spec, phase = release.get("spec") or {}, (release.get("status") or {}).get("phase")
        if pending:
            mine = spec.get("toRevision") == revision and phase not in FINAL
        else:
            mine = spec.get("toRevision") == revision or (
                spec.get("fromRevision") == revision
                and phase in (ReleasePhase.ROLLING_BACK.value, ReleasePhase.ROLLED_BACK.value))
        if mine:
            candidates.append(release)
    return _created(max(candidates, key=_created))[1] if candidates else None


def outcome(namespace: str, name: str, status: Mapping[str, Any]) -> tuple[Exit, str]:
    """How a finished release ends the command: the exit status and a sentence saying why."""
    phase, reason, message = status.get("phase"), status.get("reason") or "", status.get("message") or ""
    subject = f"Release {namespace}/{name}"
    if phase == ReleasePhase.PROMOTED.value:
        return Exit.PROMOTED, f"{subject} was promoted. {message}"
    if phase == ReleasePhase.ROLLED_BACK.value and reason == "Aborted":
        return Exit.ABORTED, f"{subject} was aborted and rolled back. {message}"
    if phase == ReleasePhase.ROLLED_BACK.value:
        return Exit.ROLLED_BACK, (f"{subject} was rolled back ({reason}). {message} `kubectl ballast describe "
                                  f"{name}` shows every analysis.")
    if phase == ReleasePhase.SUPERSEDED.value:
        return Exit.SUPERSEDED, (f"{subject} was superseded by a newer change. {message} `kubectl ballast wait "
                                 "deployment/<name>` follows the newer one.")
    return Exit.FAILED, f"{subject} failed ({reason}). {message}"


def unfinished(status: Mapping[str, Any]) -> Exit:
    """The exit status when time runs out before the release finishes."""
    return Exit.HELD if status.get("phase") in HELD_PHASES else Exit.TIMED_OUT


class Ended(click.ClickException):
    """The command ends with one of :class:`Exit`'s statuses and a sentence on standard error."""

    def __init__(self, message: str, status: Exit) -> None:
        super().__init__(message)
        self.exit_code = int(status)  # type: ignore[misc]  # click reads the instance's exit_code


# -- the shell ---------------------------------------------------------------------------------------------------

def _read(read: Callable[..., Any], subject: str) -> dict[str, Any]:
    """An object as the API server's JSON; a sentence naming it when it does not exist."""
    try:
        return json.loads(read(_preload_content=False).data)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            raise Ended(f"{subject} does not exist: check the name and the namespace (-n).",
                        Exit.CANNOT_FOLLOW) from None
        raise


def _await_release(client: kubernetes.client.ApiClient, namespace: str, name: str, deadline: float) -> str:
    """The Release of the Deployment's current change: listed, else watched for until the deadline."""
    deployment = _read(partial(kubernetes.client.AppsV1Api(client).read_namespaced_deployment, name, namespace),
                       f"Deployment {namespace}/{name}")
    custom = kubernetes.client.CustomObjectsApi(client)
    selector = f"{DEPLOYMENT_LABEL}={label_value(name)}"
    while True:
        try:
            listing = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "releases",
                                                           label_selector=selector)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                raise Ended("This cluster has no Release resource: Ballast's CRDs are not installed "
                            "(`kubectl apply -f crds/`, or the Helm chart).", Exit.CANNOT_FOLLOW) from None
            raise
        if found := release_of(deployment, listing["items"]):
            return found
        if PENDING_ANNOTATION not in (deployment["metadata"].get("annotations") or {}):
            raise Ended(f"Deployment {namespace}/{name} has no change Ballast holds: no Release records its pod "
                        f"template {template_hash(deployment['spec']['template'])} and none is pending. Its "
                        "namespace may not be governed by a ReleasePolicy; `kubectl rollout status "
                        f"deployment/{name}` follows a native rollout.", Exit.CANNOT_FOLLOW)
        left = int(deadline - time.monotonic())
        if left < 1:
            raise Ended(f"Deployment {namespace}/{name} has a change pending, but no Release recorded it in time: "
                        "is the Ballast operator running? `kubectl get events` on the Deployment may say why.",
                        Exit.TIMED_OUT)
        # From the listing's resourceVersion on, so a Release created in between is not missed.
        events = kubernetes.watch.Watch().stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "releases", label_selector=selector,
            resource_version=listing["metadata"]["resourceVersion"], timeout_seconds=left,
            _request_timeout=(DEFAULT_TIMEOUTS[0], left + DEFAULT_TIMEOUTS[1]))
        try:
            for event in events:
                if event["type"] in ("ADDED", "MODIFIED") and release_of(deployment, [event["object"]]):
                    return event["object"]["metadata"]["name"]
        except kubernetes.client.ApiException as error:
            if error.status != 410:  # Gone: the listing is too old to watch from; list again
                raise


@click.command("wait")
@click.argument("target", metavar="deployment/NAME|release/NAME")
@click.option("--timeout", type=click.IntRange(min=1), default=1800, show_default=True, metavar="SECONDS",
              help="How long to follow the release, including waiting for it to be recorded.")
@kubeconfig_option
@namespace_option
def wait(target: str, timeout: int, kubeconfig: str | None, namespace: str | None) -> None:
    """Follow the release of a Deployment's current change (or a Release), one line per step, and exit by
    its outcome.

    \b
    Exit status:
      0  Promoted
      1  nothing to follow: no such object, a change Ballast does not hold, the Release deleted, API errors
      2  usage error
      3  RolledBack by Ballast (analysis failed, canary not ready, rollout stalled, ...)
      4  RolledBack because someone aborted it (`kubectl ballast abort`)
      5  Superseded by a newer change to the Deployment
      6  still Blocked or AwaitingApproval when --timeout ran out
      7  still in progress, or not yet recorded, when --timeout ran out
      8  Failed (the Deployment was deleted during the release)
    """
    kind, name = parse_target(target)
    deadline = time.monotonic() + timeout
    client, namespace = connect(kubeconfig, namespace)
    try:
        if kind == "release":
            api = kubernetes.client.CustomObjectsApi(client)
            release = _read(partial(api.get_namespaced_custom_object, GROUP, VERSION, namespace, "releases", name),
                            f"Release {namespace}/{name}")["metadata"]["name"]
        else:
            release = _await_release(client, namespace, name, deadline)
            click.echo(f"Deployment {namespace}/{name}: following Release {release}.")
        status = follow(kubeconfig, namespace, release, max(1, int(deadline - time.monotonic())))
    except Unfinished as error:
        raise Ended(f"Release {namespace}/{release} did not finish within {timeout}s; it is still "
                    f"{progress(error.status)}. `kubectl ballast describe {release}` shows where it stands.",
                    unfinished(error.status)) from None
    except kubernetes.client.ApiException as error:
        hint = " Check the kubeconfig's credentials and permissions." if error.status in (401, 403) else ""
        raise Ended(f"The API server refused to show {target} in namespace {namespace}: {error.status} "
                    f"{error.reason}.{hint}", Exit.CANNOT_FOLLOW) from None
    except urllib3.exceptions.HTTPError as error:
        raise Ended(f"Could not follow {target} in namespace {namespace}: the API server did not answer ({error}). "
                    "Check the kubeconfig's server and the network.", Exit.CANNOT_FOLLOW) from None
    code, sentence = outcome(namespace, release, status)
    click.echo(sentence)
    raise SystemExit(int(code))
