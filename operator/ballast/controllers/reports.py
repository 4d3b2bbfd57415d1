"""Publishes the policies' violations as PolicyReports, after each policy pass (policy/reports.py decides what).

The PolicyReport CRD (wgpolicyk8s.io) is someone else's: where it is not installed, or RBAC does not
let the operator read it, this says so in the log once and skips the reports; the policy pass goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import kubernetes

from ballast.api.vocabulary import MANAGED_BY, MANAGED_BY_LABEL
from ballast.kube.client import api_client
from ballast.policy.reports import (
    REPORT_GROUP,
    REPORT_NAME,
    REPORT_PLURAL,
    REPORT_VERSION,
    PolicyAudit,
    desired_reports,
    report_changes,
)

logger = logging.getLogger(__name__)

_unavailable: int | None = None
"""The HTTP status that last made the reports unavailable (logged once per outage, not once per pass)."""


async def publish_reports(audits: Sequence[PolicyAudit], moment: datetime, ours: Callable[[str], bool]) -> None:
    """Create, replace and delete Ballast's PolicyReports so they list exactly the audits' violations.

    Only in the namespaces this operator acts for (``ours``): another shard keeps the reports of its own.
    """
    current = await asyncio.to_thread(_current_reports)
    if current is None:
        return
    current = {namespace: report for namespace, report in current.items() if ours(namespace)}
    desired = desired_reports(audits, current, moment)
    await asyncio.to_thread(_write, desired, current)


def _reports_api() -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client())


def _unavailable_now(error: kubernetes.client.ApiException) -> bool:
    """True (logged on the first time) when the API says the CRD is missing (404) or not ours to use (403)."""
    global _unavailable
    if error.status not in (403, 404):
        return False
    if _unavailable != error.status:
        _unavailable = error.status
        logger.warning(
            "Ballast publishes no PolicyReports: %s. Install the %s/%s PolicyReport CRD (Policy Reporter and "
            "Kyverno ship it) and grant the operator policyreports (the chart does); ReleasePolicy "
            "status.violations lists the violations meanwhile.",
            "the CRD is not installed" if error.status == 404 else "the operator may not list policyreports",
            REPORT_GROUP, REPORT_VERSION)
    return True


def _current_reports() -> dict[str, dict[str, Any]] | None:
    """Ballast's reports by namespace, or None when PolicyReports are unavailable."""
    global _unavailable
    try:
        listed = _reports_api().list_cluster_custom_object(
            REPORT_GROUP, REPORT_VERSION, REPORT_PLURAL, label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}")
    except kubernetes.client.ApiException as error:
        if _unavailable_now(error):
            return None
        raise
    if _unavailable is not None:
        logger.info("PolicyReports are available again; Ballast publishes its violations as PolicyReports.")
        _unavailable = None
    return {item["metadata"]["namespace"]: item for item in listed.get("items") or []
            if item["metadata"]["name"] == REPORT_NAME}


def _write(desired: dict[str, dict[str, Any]], current: dict[str, dict[str, Any]]) -> None:
    """Apply the changes; one namespace's failure does not stop the others, and is raised at the end."""
    api = _reports_api()
    create, replace, delete = report_changes(desired, current)
    calls: list[tuple[str, Callable[[], object]]] = [
        *((ns, partial(api.create_namespaced_custom_object, REPORT_GROUP, REPORT_VERSION, ns, REPORT_PLURAL,
                       desired[ns])) for ns in create),
        *((ns, partial(api.replace_namespaced_custom_object, REPORT_GROUP, REPORT_VERSION, ns, REPORT_PLURAL,
                       REPORT_NAME, _with_version(desired[ns], current[ns]))) for ns in replace),
        *((ns, partial(api.delete_namespaced_custom_object, REPORT_GROUP, REPORT_VERSION, ns, REPORT_PLURAL,
                       REPORT_NAME)) for ns in delete),
    ]
    failed = []
    for namespace, call in calls:
        try:
            call()
        except kubernetes.client.ApiException as error:
            if error.status == 404 and namespace in delete:
                continue  # already gone (its namespace, or the policy's garbage collection, took it)
            logger.warning("The PolicyReport %s/%s could not be written: %s %s.", namespace, REPORT_NAME,
                           error.status, error.reason)
            failed.append(namespace)
    if failed:
        raise RuntimeError(f"the PolicyReports in {', '.join(failed)} could not be written (logged above)")


def _with_version(report: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """``report`` as a replacement of ``current``: refused (409) if it changed since it was read."""
    metadata = {**report["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
    return {**report, "metadata": metadata}
