"""Plain-data view of a workload and the checks on its ownership annotations.

Shared by the ServiceOwnership status, the admission rules and the background audit, so a workload
is judged the same way wherever it is judged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ballast.api.common import TEAM_PATTERN, is_http_url
from ballast.api.releasepolicy import RequiredAnnotations
from ballast.api.vocabulary import CANARY_TRACK, TRACK_LABEL

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class WorkloadSummary:
    """The facts of a workload that decisions need, copied out of the API object."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    kind: str = "Deployment"
    owner_uids: frozenset[str] = frozenset()
    """UIDs of its owner references."""

    @property
    def is_canary(self) -> bool:
        """Labelled as a canary the release engine runs beside a Deployment (see :meth:`is_release_canary`)."""
        return self.labels.get(TRACK_LABEL) == CANARY_TRACK

    def is_release_canary(self, canaries: Mapping[str, str]) -> bool:
        """A canary a Release runs: labelled so, and owned by a Release (by UID) whose canary has this name.

        ``canaries`` maps the UIDs of the operator's Releases to their canaries' names. The label alone
        proves nothing: anyone who can edit a workload can set it.
        """
        return self.is_canary and any(canaries.get(uid) == self.name for uid in self.owner_uids)

    @classmethod
    def from_body(cls, body: Mapping[str, Any], kind: str | None = None) -> WorkloadSummary:
        metadata = body.get("metadata") or {}
        return cls(
            namespace=metadata.get("namespace") or "",
            name=metadata.get("name") or "",
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
            kind=kind or body.get("kind") or "Deployment",
            owner_uids=frozenset(ref["uid"] for ref in metadata.get("ownerReferences") or [] if ref.get("uid")),
        )


@dataclass(frozen=True)
class AnnotationProblem:
    """One way a workload's ownership annotations fall short, with the fix."""

    key: str
    problem: str
    """A predicate phrase, e.g. ``is missing annotation ballast.dev/runbook``."""
    fix: str
    """What to do, e.g. ``add an http(s) URL of the service's runbook``."""
    contradicts_ownership: bool = False
    """The owner is well-formed but differs from the ServiceOwnership's."""

    def sentence(self, subject: str) -> str:
        return f"{subject} {self.problem}: {self.fix}"


MAX_QUOTED = 200
"""Characters of an annotation value quoted in a message at most: the message names it, not repeats it."""


def _quoted(value: str) -> str:
    return repr(value if len(value) <= MAX_QUOTED else value[:MAX_QUOTED] + "…")


_runbook_is_url = lru_cache(maxsize=16384)(is_http_url)
"""The policy audit asks this of every workload's runbook at every pass (10,000 at 10,000 Deployments), and
the answer for a given text never changes; bounded so that odd texts cannot grow it without end."""


def parse_alerts(value: str) -> list[str]:
    """Split a comma-separated alert list, dropping blanks."""
    return [a.strip() for a in value.split(",") if a.strip()]


def annotation_problems(
    annotations: Mapping[str, str],
    keys: RequiredAnnotations,
    expected_owner: str | None = None,
) -> list[AnnotationProblem]:
    """Each way the required annotations are missing or malformed."""
    problems: list[AnnotationProblem] = []
    owner = annotations.get(keys.owner)
    if owner is None:
        problems.append(AnnotationProblem(keys.owner, f"is missing annotation {keys.owner}",
                                          "add the owning team's name, e.g. payments"))
    elif not re.fullmatch(TEAM_PATTERN, owner):
        problems.append(AnnotationProblem(keys.owner, f"has annotation {keys.owner}={_quoted(owner)}, not a team name",
                                          "use lowercase letters, digits and dashes, e.g. payments"))
    elif expected_owner is not None and owner != expected_owner:
        problems.append(AnnotationProblem(
            keys.owner,
            f"has annotation {keys.owner}={_quoted(owner)} but its ServiceOwnership says {expected_owner!r}",
            f"set {keys.owner}: {expected_owner} or change the ServiceOwnership's owner",
            contradicts_ownership=True))
    alerts = annotations.get(keys.alerts)
    if alerts is None:
        problems.append(AnnotationProblem(keys.alerts, f"is missing annotation {keys.alerts}",
                                          "add the comma-separated names of the alerts that page for it"))
    elif not parse_alerts(alerts):
        problems.append(AnnotationProblem(keys.alerts, f"has an empty annotation {keys.alerts}",
                                          "list the comma-separated names of the alerts that page for it"))
    runbook = annotations.get(keys.runbook)
    if runbook is None:
        problems.append(AnnotationProblem(keys.runbook, f"is missing annotation {keys.runbook}",
                                          "add an http(s) URL of the service's runbook"))
    elif not _runbook_is_url(runbook):
        problems.append(AnnotationProblem(keys.runbook, f"has annotation {keys.runbook}={_quoted(runbook)}, not a URL",
                                          "use an http(s) URL of the service's runbook"))
    return problems
