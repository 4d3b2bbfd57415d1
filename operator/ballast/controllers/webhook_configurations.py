"""The Validating- and MutatingWebhookConfiguration, kept in step with the policies.

What they should say is a pure function of the policies
(:func:`ballast.webhooks.configurations.desired_configurations`); this reconciler applies it when it
changed. The policy pass calls it first, so the configurations follow the same events as the policies'
statuses, and a policy's webhook exists before its status says it governs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kubernetes

from ballast.controllers.runtime import ParsedPolicy, Runtime
from ballast.kube.client import api_client
from ballast.policy.governance import SYSTEM_NAMESPACES
from ballast.webhooks.configurations import configuration_name, desired_configurations

logger = logging.getLogger(__name__)


async def reconcile_webhook_configuration(runtime: Runtime, parsed: list[ParsedPolicy]) -> None:
    """Create or replace the webhook configurations when what they should say has changed."""
    if runtime.webhook_endpoint is None:
        return  # Webhooks disabled, or a chart manages the configuration.
    desired = desired_configurations(
        [(p.name, p.effective) for p in parsed if p.effective is not None],
        runtime.webhook_endpoint,
        always_exempt=sorted({*runtime.always_exempt(), *SYSTEM_NAMESPACES}),
        shard=runtime.options.shard,
    )
    name = configuration_name(runtime.options.shard)
    if list(desired) == runtime.applied_webhook_configurations:
        return
    api = kubernetes.client.AdmissionregistrationV1Api(api_client())
    kinds = {
        "ValidatingWebhookConfiguration": (api.read_validating_webhook_configuration,
                                           api.create_validating_webhook_configuration,
                                           api.replace_validating_webhook_configuration),
        "MutatingWebhookConfiguration": (api.read_mutating_webhook_configuration,
                                         api.create_mutating_webhook_configuration,
                                         api.replace_mutating_webhook_configuration),
    }

    def apply(body: dict[str, Any]) -> None:
        read, create, replace = kinds[body["kind"]]
        try:
            current = read(name)
        except kubernetes.client.ApiException as error:
            if error.status != 404:
                raise
            create(body)
            return
        metadata = {**body["metadata"], "resourceVersion": current.metadata.resource_version}
        replace(name, {**body, "metadata": metadata})

    for body in desired:
        await asyncio.to_thread(apply, body)
    runtime.applied_webhook_configurations = list(desired)
    logger.info("Webhook configurations %s now cover %d policies.", name, len(parsed))
