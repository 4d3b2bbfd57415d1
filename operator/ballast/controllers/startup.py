"""Operator start-up and shutdown: kopf settings, the shared runtime, and the periodic resync."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from ballast.controllers.coalesce import Coalescer
from ballast.controllers.ownership import reconcile_namespace
from ballast.controllers.policies import reconcile_policies
from ballast.controllers.runtime import Options, Runtime

logger = logging.getLogger(__name__)

ANNOTATION_PREFIX = "ballast.dev"


def configure_persistence(settings: kopf.OperatorSettings) -> None:
    """Keep any bookkeeping kopf does under Ballast's own annotation prefix, never kopf's defaults."""
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )


@kopf.on.startup()
async def start(
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    namespace_labels: kopf.Index,
    deployments_by_namespace: kopf.Index,
    ownerships_by_namespace: kopf.Index,
    policies_by_name: kopf.Index,
    **_: Any,
) -> None:
    configure_persistence(settings)
    settings.watching.server_timeout = 300
    options: Options = memo.get("options") or Options()
    runtime = Runtime(
        options=options,
        namespaces=namespace_labels,
        deployments=deployments_by_namespace,
        ownerships=ownerships_by_namespace,
        policies=policies_by_name,
    )
    runtime.ownership_reconciler = Coalescer(lambda ns: reconcile_namespace(runtime, ns))
    runtime.policy_reconciler = Coalescer(lambda key: reconcile_policies(runtime, key))
    runtime.background.append(asyncio.create_task(_resync(runtime)))
    memo.runtime = runtime


async def _resync(runtime: Runtime) -> None:
    """Freeze windows open and close with the clock, not with events: re-evaluate periodically."""
    while True:
        await asyncio.sleep(runtime.options.resync_seconds)
        runtime.policy_reconciler.request("all")


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is None:
        return
    for task in runtime.background:
        task.cancel()
    await asyncio.gather(*runtime.background, return_exceptions=True)
    for reconciler in (runtime.ownership_reconciler, runtime.policy_reconciler):
        if reconciler is not None:
            await reconciler.close()
