"""``ballast operator run``: run the kopf operator out of cluster or in a pod."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import kopf

from ballast.instruments import LEADER
from ballast.kube.leadership import LeaseElector, label_pod
from ballast.probes import ProbeServer

if TYPE_CHECKING:
    from ballast.api.shards import Shard
    from ballast.controllers.runtime import Acting

logger = logging.getLogger(__name__)


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
@click.option("--health-port", type=int, default=8081, show_default=True,
              help="Port of /healthz (liveness) and /readyz (readiness); 0 disables them.")
@click.option("--health-address", default="0.0.0.0", show_default=True, help="Address the probes listen on.")
@click.option("--leader-election/--no-leader-election", default=False, show_default=True,
              help="Run as one of several replicas: every replica answers admission, only the holder of a Lease "
                   "in --operator-namespace acts (reconciles and writes). Identity: $POD_NAME (whose Pod the "
                   "leader labels ballast.dev/leader=true), else the host name.")
@click.option("--leader-election-id", default="ballast", show_default=True, help="Name of the Lease.")
@click.option("--leader-election-lease-seconds", type=click.IntRange(3, 600), default=15, show_default=True,
              help="How long a silent leader keeps the Lease before a follower takes over; it renews every "
                   "2/15 of that and gives up leading after 2/3 of it without a renewal.")
@click.option("--shard", "shard_name", default=None, metavar="NAME",
              help="Run as one shard of several operator Deployments: act (reconcile, audit, release) only in the "
                   "namespaces --shard-selector picks, and keep webhook configurations named NAME.ballast.dev that "
                   "send this shard only those. Needs --leader-election; give each shard its own "
                   "--leader-election-id.")
@click.option("--shard-selector", default=None, metavar="SELECTOR",
              help="The shard's namespaces, as a label selector (kubectl -l syntax), e.g. '!ballast.dev/shard' for "
                   "the default shard and 'ballast.dev/shard=b' for shard b; the shards' selectors must be "
                   "disjoint and together pick every governed namespace (each ReleasePolicy's Sharded condition "
                   "says whether they do).")
@click.option("--shutdown-drain-seconds", type=click.FloatRange(0, 300), default=5.0, show_default=True,
              help="On SIGTERM, how long the replica keeps answering admission after it reports not ready (and "
                   "has handed the Lease over), so the webhook Service drops it before it stops listening.")
@click.option("--resync-seconds", type=float, default=10.0, show_default=True,
              help="How often clock-driven state (freeze windows) is re-evaluated.")
@click.option("--prometheus-refresh-seconds", type=float, default=30.0, show_default=True,
              help="How often what admission and release gates read from Prometheus (alerting rules, "
                   "error budgets) is refreshed.")
@click.option("--prometheus-timeout-seconds", type=click.FloatRange(0.5, 300), default=5.0, show_default=True,
              help="Client-side deadline of one Prometheus request once connected (connecting gets at most "
                   "2 s); a hung Prometheus costs an analysis this long, and turns its verdict into Error.")
@click.option("--kube-timeout-seconds", type=click.FloatRange(1, 600), default=15.0, show_default=True,
              help="Client-side deadline of one Kubernetes API request once connected (connecting gets at most "
                   "5 s); watches are not affected.")
@click.option("--metrics-port", type=int, default=8080, show_default=True,
              help="Port of the operator's Prometheus /metrics endpoint; 0 disables it.")
@click.option("--metrics-address", default="0.0.0.0", show_default=True, help="Address /metrics listens on.")
@click.option("--operator-username", envvar="BALLAST_OPERATOR_USERNAME",
              help="The username the API server sees for the operator (default: asked with a TokenReview); "
                   "admission lets this identity's writes through untouched. Webhooks are not served without it.")
@click.option("--webhooks/--no-webhooks", default=True, show_default=True,
              help="Serve the admission webhooks and keep the ValidatingWebhookConfiguration in step.")
@click.option("--webhook-port", type=int, default=9443, show_default=True, help="Port the webhook server listens on.")
@click.option("--webhook-address", default="0.0.0.0", show_default=True, help="Address the webhook server listens on.")
@click.option("--webhook-host", default="127.0.0.1", show_default=True,
              help="Host in the webhook URL the API server calls, when no --webhook-service is given.")
@click.option("--webhook-url", default=None, metavar="URL",
              help="Base URL the API server calls instead of this replica's own (a load balancer in front of every "
                   "replica, out of a cluster); the replicas then share --webhook-cert-dir.")
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
    health_port: int,
    health_address: str,
    leader_election: bool,
    leader_election_id: str,
    leader_election_lease_seconds: int,
    shard_name: str | None,
    shard_selector: str | None,
    shutdown_drain_seconds: float,
    resync_seconds: float,
    prometheus_refresh_seconds: float,
    prometheus_timeout_seconds: float,
    kube_timeout_seconds: float,
    metrics_port: int,
    metrics_address: str,
    operator_username: str | None,
    webhooks: bool,
    webhook_port: int,
    webhook_address: str,
    webhook_host: str,
    webhook_url: str | None,
    webhook_service: str | None,
    webhook_cert_dir: Path | None,
) -> None:
    """Run the operator until interrupted."""
    from prometheus_client import start_http_server

    from ballast import controllers  # noqa: F401  (registers the handlers)
    from ballast.controllers.runtime import Acting, Options
    from ballast.kube.client import configure, whoami
    from ballast.metrics.provider import Timeouts
    from ballast.webhooks.server import WebhookOptions

    configure(kubeconfig, timeouts=(min(5.0, kube_timeout_seconds), kube_timeout_seconds))
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
    if operator_username is None and webhooks:
        # Its webhooks would treat its own writes as a person's: revert its promotions, refuse its Releases.
        raise click.UsageError(
            "The operator could not tell which user the API server sees it as (the TokenReview failed), so it "
            "cannot serve webhooks that must let its own writes through: pass --operator-username with that "
            "user name (e.g. system:serviceaccount:ballast-system:ballast), or run with --no-webhooks.")
    if webhook_service is not None and "/" not in webhook_service:
        raise click.BadParameter("use NAMESPACE/NAME, e.g. ballast-system/ballast", param_hint="--webhook-service")
    if leader_election and not operator_namespace:
        raise click.BadParameter("leader election keeps its Lease in the operator's namespace: pass "
                                 "--operator-namespace too", param_hint="--leader-election")
    shard = _shard(shard_name, shard_selector, leader_election)
    if shard is not None:
        logger.info("Acting as shard %s, for the namespaces %r picks.", shard.name, shard.selector_text)
    options = Options(
        shard=shard,
        lease=f"{operator_namespace}/{leader_election_id}" if leader_election else None,
        operator_namespace=operator_namespace,
        prometheus_url=prometheus_url,
        resync_seconds=resync_seconds,
        prometheus_refresh_seconds=prometheus_refresh_seconds,
        prometheus_timeouts=Timeouts(connect=min(2.0, prometheus_timeout_seconds), read=prometheus_timeout_seconds),
        operator_username=operator_username,
        webhooks=WebhookOptions(
            port=webhook_port, bind_address=webhook_address, host=webhook_host,
            service=webhook_service, url=webhook_url, cert_dir=webhook_cert_dir,
        ) if webhooks else None,
    )
    if metrics_port:
        start_http_server(metrics_port, addr=metrics_address)
    pod = os.environ.get("POD_NAME")
    election = Election(
        LeaseElector(operator_namespace, leader_election_id, pod or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}",
                     lease_seconds=leader_election_lease_seconds,
                     renew_deadline_seconds=leader_election_lease_seconds * 2 / 3,
                     retry_seconds=leader_election_lease_seconds * 2 / 15),
        pod,
    ) if leader_election and operator_namespace else None
    replica = Replica(election, kopf_arguments={
        "clusterwide": not namespaces, "namespaces": list(namespaces),
        # Ballast elects its leader itself (see ballast.kube.leadership): kopf's peering stays off.
        "standalone": True, "memo": kopf.Memo(options=options),
    }, acting=Acting(leading=election is None), drain_seconds=shutdown_drain_seconds)
    code = asyncio.run(replica.run((health_port, health_address) if health_port else None))
    if code:
        raise SystemExit(code)


def _shard(name: str | None, selector: str | None, leader_election: bool) -> Shard | None:
    """The shard this operator is, from --shard and --shard-selector (both or neither)."""
    from ballast.api.shards import SelectorError, shard

    if name is None and selector is None:
        return None
    if name is None or selector is None:
        raise click.UsageError("a shard needs both --shard NAME and --shard-selector SELECTOR")
    if not leader_election:
        # Its Lease is how the other shards know it still runs (see the ReleasePolicy's Sharded condition).
        raise click.BadParameter("a shard proves it runs by its Lease: pass --leader-election too",
                                 param_hint="--shard")
    try:
        return shard(name, selector)
    except SelectorError as error:
        raise click.BadParameter(str(error), param_hint="--shard/--shard-selector") from error


@dataclass(frozen=True)
class Election:
    elector: LeaseElector
    pod: str | None
    """This replica's Pod, labelled while it leads; None out of cluster."""

    async def label(self, leading: bool) -> None:
        if self.pod is not None:
            await asyncio.to_thread(label_pod, self.elector.namespace, self.pod, leading)


class Replica:
    """One operator process. It always runs kopf: it watches, fills its indexes and answers admission.
    It acts (reconciles and writes) alone, or while it holds the leader Lease.

    On SIGTERM it first stops acting and hands the Lease over, then reports not ready and keeps answering
    admission for ``drain_seconds`` while the webhook Service drops it, and only then stops kopf.
    """

    def __init__(self, election: Election | None, kopf_arguments: dict[str, Any], acting: Acting,
                 drain_seconds: float) -> None:
        self.election = election
        self.kopf_arguments = kopf_arguments
        self.drain_seconds = drain_seconds
        self.acting = acting
        kopf_arguments["memo"]["acting"] = acting
        self.stopping = False
        LEADER.set(self.acting.leading)

    def readiness(self) -> str | None:
        if self.stopping:
            return "the operator is stopping"
        runtime = self.kopf_arguments["memo"].get("runtime")
        return runtime.readiness() if runtime is not None else "the operator is starting"

    async def run(self, probes_at: tuple[int, str] | None) -> int:
        probes = ProbeServer(*probes_at, readiness=self.readiness) if probes_at else None
        if probes is not None:
            await probes.start()
        stop = asyncio.Event()
        operator = asyncio.create_task(kopf.operator(**self.kopf_arguments, stop_flag=stop))
        campaign = asyncio.create_task(self._campaign(self.election)) if self.election else None
        try:
            terminated = await self._take_signals(operator)
            await asyncio.wait({operator, terminated, *([campaign] if campaign else [])},
                               return_when=asyncio.FIRST_COMPLETED)
            terminated.cancel()
            failed = campaign is not None and campaign.done()  # it only ends by an error: restart this replica
            self.stopping = True
            if (runtime := self.kopf_arguments["memo"].get("runtime")) is not None:
                runtime.webhooks_draining.set()
            if campaign is not None:
                campaign.cancel()
                for outcome in await asyncio.gather(campaign, return_exceptions=True):
                    if isinstance(outcome, Exception):
                        logger.error("Leader election failed: %r", outcome)
                await self._step_down()
            if not operator.done():
                # Answering admission while the webhook Service drops this replica: no request finds it gone.
                await asyncio.sleep(self.drain_seconds)
            stop.set()
            await operator
            if failed:
                logger.error("Leader election failed (logged above): exiting so that this replica restarts.")
            return 1 if failed else 0
        finally:
            if probes is not None:
                await probes.stop()

    async def _take_signals(self, operator: asyncio.Task[None]) -> asyncio.Task[Any]:
        """SIGTERM and SIGINT start this replica's own shutdown instead of kopf's (which would stop serving
        at once); installed once kopf has installed its handlers, which these replace."""
        memo = self.kopf_arguments["memo"]
        while "runtime" not in memo and not operator.done():
            await asyncio.sleep(0.05)
        terminated = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, terminated.set)
        return asyncio.create_task(terminated.wait())

    async def _campaign(self, election: Election) -> None:
        """Lead whenever this replica holds the Lease; after losing it, stop acting and campaign again."""
        await election.label(False)  # a restarted container's Pod may still carry the label
        while True:
            await election.elector.acquire()
            self.acting.lead()
            LEADER.set(1)
            await election.label(True)
            await election.elector.keep()
            logger.error("Leadership lost: this replica stops acting and campaigns again (it keeps admitting).")
            await self.acting.resign()
            LEADER.set(0)
            await election.label(False)

    async def _step_down(self) -> None:
        assert self.election is not None
        if self.acting.leading:
            await self.acting.resign()  # no release step is half done when the next leader starts
            LEADER.set(0)
            await self.election.label(False)
        # Even when not acting yet: the campaign may have been stopped just after it took the Lease.
        await self.election.elector.release()
