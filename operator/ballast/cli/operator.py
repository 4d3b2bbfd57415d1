"""``ballast operator run``: run the kopf operator out of cluster or in a pod."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click
import kopf


def _drop_admission_refusals(record: logging.LogRecord) -> bool:
    """kopf logs every refused admission as a failed handler; a refusal is the webhook working."""
    return not (record.getMessage().startswith("Webhook ") and "failed permanently" in record.getMessage())


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
              help="Serve kopf's health probe, e.g. http://0.0.0.0:8081/healthz.")
@click.option("--resync-seconds", type=float, default=10.0, show_default=True,
              help="How often clock-driven state (freeze windows) is re-evaluated.")
@click.option("--prometheus-refresh-seconds", type=float, default=30.0, show_default=True,
              help="How often what admission and release gates read from Prometheus (alerting rules, "
                   "error budgets) is refreshed.")
@click.option("--metrics-port", type=int, default=8080, show_default=True,
              help="Port of the operator's Prometheus /metrics endpoint; 0 disables it.")
@click.option("--metrics-address", default="0.0.0.0", show_default=True, help="Address /metrics listens on.")
@click.option("--operator-username", envvar="BALLAST_OPERATOR_USERNAME",
              help="The username the API server sees for the operator (default: asked with a TokenReview); "
                   "admission lets this identity's writes through untouched.")
@click.option("--webhooks/--no-webhooks", default=True, show_default=True,
              help="Serve the admission webhooks and keep the ValidatingWebhookConfiguration in step.")
@click.option("--webhook-port", type=int, default=9443, show_default=True, help="Port the webhook server listens on.")
@click.option("--webhook-address", default="0.0.0.0", show_default=True, help="Address the webhook server listens on.")
@click.option("--webhook-host", default="127.0.0.1", show_default=True,
              help="Host in the webhook URL the API server calls, when no --webhook-service is given.")
@click.option("--webhook-service", default=None, metavar="NAMESPACE/NAME",
              help="Service in front of the operator (in a cluster); the API server calls it instead of a URL.")
@click.option("--webhook-cert-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory with tls.crt and tls.key (and optionally ca.crt); a self-signed pair is made "
                   "there (or in a temporary directory) when absent.")
def run(
    kubeconfig: str | None,
    namespaces: tuple[str, ...],
    operator_namespace: str | None,
    prometheus_url: str | None,
    log_format: str,
    verbose: bool,
    liveness_endpoint: str | None,
    resync_seconds: float,
    prometheus_refresh_seconds: float,
    metrics_port: int,
    metrics_address: str,
    operator_username: str | None,
    webhooks: bool,
    webhook_port: int,
    webhook_address: str,
    webhook_host: str,
    webhook_service: str | None,
    webhook_cert_dir: Path | None,
) -> None:
    """Run the operator until interrupted."""
    from prometheus_client import start_http_server

    from ballast import controllers  # noqa: F401  (registers the handlers)
    from ballast.admission.webhook import WebhookOptions
    from ballast.controllers.runtime import Options
    from ballast.kube.client import configure, whoami

    configure(kubeconfig)
    kopf.configure(
        verbose=verbose,
        log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN,
    )
    if not verbose:
        # Per-request and per-event lines at INFO drown the signal and fatten the admission tail;
        # refusals are counted in ballast_admission_requests_total instead of logged by kopf as errors.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
        logging.getLogger("kopf.objects").addFilter(_drop_admission_refusals)
    operator_username = operator_username or whoami()
    if operator_username is None:
        logging.getLogger(__name__).warning(
            "Could not tell which user the operator runs as: pass --operator-username, or its own "
            "Deployment writes (rollbacks, promotions) are checked like anyone's.")
    if webhook_service is not None and "/" not in webhook_service:
        raise click.BadParameter("use NAMESPACE/NAME, e.g. ballast-system/ballast", param_hint="--webhook-service")
    options = Options(
        operator_namespace=operator_namespace,
        prometheus_url=prometheus_url,
        resync_seconds=resync_seconds,
        prometheus_refresh_seconds=prometheus_refresh_seconds,
        operator_username=operator_username,
        webhooks=WebhookOptions(
            port=webhook_port, bind_address=webhook_address, host=webhook_host,
            service=webhook_service, cert_dir=webhook_cert_dir,
        ) if webhooks else None,
    )
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_address)
    asyncio.run(kopf.operator(
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        standalone=True,
        liveness_endpoint=liveness_endpoint,
        memo=kopf.Memo(options=options),
    ))
