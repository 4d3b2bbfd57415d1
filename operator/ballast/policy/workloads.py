"""Plain-data view of a workload and the checks on its ownership annotations.

Shared by the ServiceOwnership status and (later) the admission rules, so a workload is judged the
same way wherever it is judged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ballast.api.common import TEAM_PATTERN, URL_PATTERN
from ballast.api.releasepolicy import RequiredAnnotations


@dataclass(frozen=True)
class WorkloadSummary:
    """The facts of a Deployment that decisions need, copied out of the API object."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping) -> WorkloadSummary:
        metadata = body.get("metadata") or {}
        return cls(
            namespace=metadata.get("namespace") or "",
            name=metadata.get("name") or "",
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
        )


def parse_alerts(value: str) -> list[str]:
    """Split a comma-separated alert list, dropping blanks."""
    return [a.strip() for a in value.split(",") if a.strip()]


def annotation_problems(
    annotations: Mapping[str, str],
    keys: RequiredAnnotations,
    expected_owner: str | None = None,
) -> list[str]:
    """Each way the required annotations are missing or malformed, as a phrase with the fix."""
    problems: list[str] = []
    owner = annotations.get(keys.owner)
    if owner is None:
        problems.append(f"missing annotation {keys.owner} (the owning team)")
    elif not re.fullmatch(TEAM_PATTERN, owner):
        problems.append(f"annotation {keys.owner}={owner!r} is not a team name such as payments")
    elif expected_owner is not None and owner != expected_owner:
        problems.append(
            f"annotation {keys.owner}={owner!r} contradicts the ServiceOwnership owner {expected_owner!r}"
        )
    alerts = annotations.get(keys.alerts)
    if alerts is None:
        problems.append(f"missing annotation {keys.alerts} (comma-separated alert names)")
    elif not parse_alerts(alerts):
        problems.append(f"annotation {keys.alerts} is empty: list the alert names that page for it")
    runbook = annotations.get(keys.runbook)
    if runbook is None:
        problems.append(f"missing annotation {keys.runbook} (an http(s) URL of the runbook)")
    elif not re.fullmatch(URL_PATTERN, runbook):
        problems.append(f"annotation {keys.runbook}={runbook!r} is not an http(s) URL")
    return problems
