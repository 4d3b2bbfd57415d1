"""``ballast operator run``: run the kopf operator out of cluster or in a pod."""

from __future__ import annotations

import asyncio
import logging

import click
import kopf


@click.group("operator")
def operator_group() -> None:
    """Run the Ballast operator."""


@operator_group.command("run")
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), envvar="KUBECONFIG",
              help="Kubeconfig to use; defaults to $KUBECONFIG, ~/.kube/config, then in-cluster.")
@click.option("-n", "--namespace", "namespaces", multiple=True,
              help="Watch only these namespaces (repeatable; globs allowed). Default: all namespaces.")
@click.option("--operator-namespace", envvar="BALLAST_OPERATOR_NAMESPACE",
              help="Namespace the operator runs in; never governed.")
@click.option("--prometheus-url", envvar="BALLAST_PROMETHEUS_URL",
              help="Prometheus base URL used when a ReleasePolicy names none.")
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True,
              help="Log line format; json suits log collectors.")
@click.option("--verbose", is_flag=True, help="Log at DEBUG level.")
@click.option("--liveness", "liveness_endpoint", default=None,
              help="Serve kopf's health probe, e.g. http://0.0.0.0:8080/healthz.")
@click.option("--resync-seconds", type=float, default=10.0, show_default=True,
              help="How often clock-driven state (freeze windows) is re-evaluated.")
def run(
    kubeconfig: str | None,
    namespaces: tuple[str, ...],
    operator_namespace: str | None,
    prometheus_url: str | None,
    log_format: str,
    verbose: bool,
    liveness_endpoint: str | None,
    resync_seconds: float,
) -> None:
    """Run the operator until interrupted."""
    from ballast import controllers  # noqa: F401  (registers the handlers)
    from ballast.controllers.runtime import Options
    from ballast.kube.client import configure

    configure(kubeconfig)
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN,
    )
    if not verbose:
        # Every watch event at INFO would drown the signal and slow the admission path.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    options = Options(
        operator_namespace=operator_namespace,
        prometheus_url=prometheus_url,
        resync_seconds=resync_seconds,
    )
    asyncio.run(kopf.operator(
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        standalone=True,
        liveness_endpoint=liveness_endpoint,
        memo=kopf.Memo(options=options),
    ))
