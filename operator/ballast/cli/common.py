"""What every cluster-facing plugin command shares: how it finds the cluster and the namespace."""

from __future__ import annotations

import click
import kubernetes

from ballast.kube.client import DEFAULT_TIMEOUTS, DeadlineApiClient

kubeconfig_option = click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False), envvar="KUBECONFIG",
                                 help="Kubeconfig to use; defaults to $KUBECONFIG or ~/.kube/config.")
namespace_option = click.option("-n", "--namespace", default=None,
                                help="Namespace; defaults to the kubeconfig context's.")


def connect(kubeconfig: str | None, namespace: str | None) -> tuple[kubernetes.client.ApiClient, str]:
    """An API client for the kubeconfig (every call with a deadline) and the namespace to use (the flag,
    else the context's, else default)."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    client = DeadlineApiClient(DEFAULT_TIMEOUTS, configuration)
    if namespace is None:
        _, context = kubernetes.config.list_kube_config_contexts(config_file=kubeconfig)
        namespace = (context or {}).get("context", {}).get("namespace") or "default"
    return client, namespace
