"""Operator start-up and shutdown: kopf settings, the shared runtime, and the periodic resync."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import tempfile
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

import kopf

from ballast.api.vocabulary import PREFIX
from ballast.controllers.analysis import AnalysisRunner, measure_error_budget
from ballast.controllers.coalesce import Coalescer
from ballast.controllers.ownership import reconcile_namespace
from ballast.controllers.policies import reconcile_policies, record_answered_refusals
from ballast.controllers.releases import reconcile_release
from ballast.controllers.runtime import Acting, Options, Runtime
from ballast.controllers.shedding import shed_after_indexing
from ballast.controllers.toggles import install_toggle_sets, kopf_indexed
from ballast.controllers.triggers import every_key
from ballast.kube.client import connection_info, request_timeouts
from ballast.metrics.provider import ProviderUnavailable
from ballast.webhooks.server import build_server

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

LIST_PAGE_SIZE = 500
"""Objects per page of kopf's initial listings."""

# Before kopf.operator() builds its toggle sets: importing the handlers (this module) comes first.
install_toggle_sets()
shed_after_indexing()


def configure_persistence(settings: kopf.OperatorSettings) -> None:
    """Keep any bookkeeping kopf does under Ballast's own annotation prefix, never kopf's defaults."""
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    return connection_info()


# kopf passes the indexes as keyword arguments, which its ActivityFn protocol does not list.
@kopf.on.startup()  # type: ignore[arg-type]
async def start(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    namespace_labels: kopf.Index,
    workloads_by_namespace: kopf.Index,
    ownerships_by_namespace: kopf.Index,
    policies_by_name: kopf.Index,
    releases_by_namespace: kopf.Index,
    **_: Any,
) -> None:
    configure_persistence(settings)
    settings.watching.server_timeout = 300
    # List in pages: at 10,000 Deployments one unpaged list is tens of MB of JSON, parsed at once, on top
    # of the indexes (and as much again in the API server); pages keep one page in memory at a time.
    settings.watching.chunk_size = LIST_PAGE_SIZE
    # kopf's own API calls get the same client-side deadlines as Ballast's (watches keep theirs).
    connect, read = request_timeouts()
    settings.networking.connect_timeout = connect
    settings.networking.request_timeout = connect + read
    settings.watching.connect_timeout = connect
    options: Options = memo.get("options") or Options()
    runtime = build_runtime(options, namespace_labels, workloads_by_namespace, ownerships_by_namespace,
                            policies_by_name, releases_by_namespace, memo.get("acting") or Acting())
    if options.webhooks is not None:
        scratch = Path(tempfile.mkdtemp(prefix="ballast-webhook-"))
        server, runtime.webhook_endpoint = build_server(options.webhooks, scratch, runtime.webhooks_listening,
                                                        runtime.webhooks_draining)
        settings.admission.server = server
    runtime.background += [
        asyncio.create_task(_mark_indexes_filled(runtime)),
        asyncio.create_task(_act_on_leading(runtime)),
        asyncio.create_task(_resync(runtime)),
        asyncio.create_task(_refresh_alert_rules(runtime)),
        asyncio.create_task(_refresh_error_budgets(runtime)),
    ]
    memo.runtime = runtime


def build_runtime(options: Options, namespaces: kopf.Index, workloads: kopf.Index, ownerships: kopf.Index,
                  policies: kopf.Index, releases: kopf.Index, acting: Acting | None = None) -> Runtime:
    """The runtime over kopf's indexes, with its reconcilers (each bound to it, each running only while
    this replica acts and, when sharded, only for its shard's namespaces; but the recorder of its own
    refusals) and the analysis runner."""
    acting = acting or Acting()

    def acted(reconcile: Callable[[Runtime, K], Awaitable[None]],
              namespace_of: Callable[[K], str] | None = None) -> Callable[[K], Awaitable[None]]:
        async def run(key: K) -> None:
            # Checked as the pass starts, against the namespace's labels now: one relabelled into another
            # shard since the pass was asked for is that shard's.
            if namespace_of is not None and not runtime.in_shard(namespace_of(key)):
                return
            async with acting.acting() as leading:
                if leading:
                    await reconcile(runtime, key)
        return run

    releases_reconciler: Coalescer[tuple[str, ...]] = Coalescer(acted(reconcile_release, release_namespace),
                                                                delay=0.05)
    runtime = Runtime(
        options=options, namespaces=namespaces, workloads=workloads, ownerships=ownerships, policies=policies,
        releases=releases,
        ownership_reconciler=Coalescer(acted(reconcile_namespace, str)),
        policy_reconciler=Coalescer(acted(reconcile_policies), delay=0.5),
        release_reconciler=releases_reconciler,
        refusal_recorder=Coalescer(lambda name: record_answered_refusals(runtime, name)),
        analyses=AnalysisRunner(releases_reconciler.request),
        acting=acting,
    )
    return runtime


def release_namespace(key: tuple[str, ...]) -> str:
    """The namespace of a release pass's key: (namespace, release) or ("deployment", namespace, name)."""
    return key[1] if key[0] == "deployment" else key[0]


async def _mark_indexes_filled(runtime: Runtime) -> None:
    """Mark the indexes filled once kopf has indexed every listed object and a handler has run.

    The handler's context is what passes asked for from outside a handler need (``kopf.event``); handlers
    run from the first listed object on (``controllers/toggles.py``), so it is there long before.
    """
    await kopf_indexed()
    await runtime.handler_called.wait()
    runtime.indexes_filled.set()


async def _act_on_leading(runtime: Runtime) -> None:
    """Each time this replica begins to lead, once its indexes are filled, reconcile everything they hold."""
    while True:
        await runtime.acting.led.wait()
        runtime.acting.led.clear()
        await runtime.indexes_filled.wait()
        if runtime.acting.leading and runtime.handler_context is not None:
            # The passes' tasks inherit this context: kopf.event works in them as in a handler's.
            runtime.handler_context.run(every_key, runtime)


async def _filled_indexes(runtime: Runtime) -> contextvars.Context:
    """Wait until the indexes are filled, and return the context passes asked for from outside a handler run in.

    A pass asked for earlier would judge half-listed indexes (a policy's status, the webhook configurations),
    and ``kopf.event`` works only in the context kopf sets for its handlers. At 10,000 Deployments filling
    the indexes takes longer than a resync period.
    """
    await runtime.indexes_filled.wait()
    return runtime.handler_context or contextvars.copy_context()  # set before indexes_filled


async def _resync(runtime: Runtime) -> None:
    """Freeze windows open and close with the clock, not with events: re-evaluate periodically."""
    context = await _filled_indexes(runtime)
    while True:
        await asyncio.sleep(runtime.options.resync_seconds)
        context.run(runtime.policy_reconciler.request, "all")


async def _refresh_alert_rules(runtime: Runtime) -> None:
    """Keep the alert rules of every Prometheus a policy verifies against in memory, for admission."""
    while True:
        urls = {
            url for p in runtime.parsed_policies()
            if p.effective is not None and p.effective.admission.verify_alerts_exist
            and (url := runtime.prometheus_url(p.effective)) is not None
        }
        for url in urls:
            try:
                names = await asyncio.get_running_loop().run_in_executor(
                    runtime.executor_for(url), runtime.provider(url).alert_rule_names)
            except ProviderUnavailable as error:
                logger.warning("Alert rules unknown, admission degrades to warnings: %s", error)
                names = None
            if runtime.known_alerts.get(url) != names:
                runtime.audit_inputs += 1  # the audit's alerts-exist findings read them
            runtime.known_alerts[url] = names
        await asyncio.sleep(runtime.options.prometheus_refresh_seconds)


async def _refresh_error_budgets(runtime: Runtime) -> None:
    """Keep every SLO's remaining error budget in memory, for release gates and ServiceOwnership status."""
    context = await _filled_indexes(runtime)
    while True:
        # Release gates and statuses read them, admission does not: only the acting replica asks.
        for namespace in list(runtime.ownerships.keys()) if runtime.acting.leading else []:
            if not runtime.in_shard(namespace):
                continue
            policy = runtime.governing_policy(namespace)
            spec = policy.effective if policy and policy.effective else None
            url = runtime.prometheus_url(spec) if spec else runtime.options.prometheus_url
            for ownership in runtime.named_ownerships(namespace):
                if ownership.spec.slo is None or url is None or spec is None:
                    continue
                names = [w.name for w in runtime.workloads.get(namespace, [])
                         if w.kind == "Deployment" and not w.is_canary and ownership.spec.selector.matches(w.labels)]
                try:
                    remaining = await asyncio.get_running_loop().run_in_executor(
                        runtime.executor_for(url), measure_error_budget, runtime.provider(url),
                        spec.prometheus.queries, namespace, names, ownership.spec.slo.availability,
                        ownership.spec.slo.window)
                except Exception:  # one service's trouble must not stop the budgets of all the others
                    logger.exception("The error budget of ServiceOwnership %s/%s could not be measured.",
                                     namespace, ownership.name)
                    continue
                key = (namespace, ownership.name)
                if runtime.error_budgets.get(key) != remaining:
                    runtime.error_budgets[key] = remaining
                    context.run(runtime.ownership_reconciler.request, namespace)
        await asyncio.sleep(runtime.options.prometheus_refresh_seconds)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is None:
        return
    for task in runtime.background:
        task.cancel()
    await asyncio.gather(*runtime.background, return_exceptions=True)
    await runtime.ownership_reconciler.close()
    await runtime.policy_reconciler.close()
    await runtime.release_reconciler.close()
    await runtime.refusal_recorder.close()
    runtime.close_executors()
