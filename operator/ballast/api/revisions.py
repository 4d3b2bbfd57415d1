"""What identifies a revision of a workload: the hash of its pod template, the images it runs, and the
record of the revisions Ballast rolled back.

The webhook, the release engine and the Release record all name revisions by this hash, so it is
part of Ballast's vocabulary rather than of any one decision.

Contract between the release engine and admission: when the engine rolls a revision back it records the
pod template's hash and the time in the workload annotation ``ballast.dev/rolled-back-revisions`` as a
JSON object ``{"<template hash>": "<RFC 3339 time>"}`` (:func:`rolled_back_record`); admission reads it
(:func:`rolled_back_revisions`) from the stored (old) object.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ballast.api.vocabulary import ROLLED_BACK_ANNOTATION

ROLLED_BACK_HISTORY = 10
"""Rolled-back revisions remembered per Deployment."""


def _without_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def template_hash(template: Mapping[str, Any] | None) -> str:
    """A stable short hash of a pod template: the identity of a revision across Ballast.

    Nulls are dropped first: the API server writes ``creationTimestamp: null`` into templates and some
    clients omit it, and the same template must hash the same whichever way it was read.
    """
    canonical = json.dumps(_without_nulls(template or {}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def images(template: Mapping[str, Any] | None) -> list[str]:
    """The container images of a pod template, in order."""
    containers = ((template or {}).get("spec") or {}).get("containers") or []
    return [c.get("image", "") for c in containers]


MAX_ROLLED_BACK_RECORD = 16 * 1024
"""Characters of the rolled-back annotation read at most: Ballast's own record stays under 1 KiB."""


def rolled_back_revisions(annotations: Mapping[str, str]) -> dict[str, datetime]:
    """The readable entries of the rolled-back annotation: template hash -> when it was rolled back.

    Ballast writes the record, but a broken one (not JSON, not an object, nested too deep, too long, a
    value that is not a time) must not fail every later change of the workload with an internal error:
    what cannot be read is ignored, as if that revision had not been rolled back (its release still has to
    pass the canary analysis). A time without an offset is read as UTC, like every Kubernetes timestamp.
    """
    raw = annotations.get(ROLLED_BACK_ANNOTATION)
    if not raw or len(raw) > MAX_ROLLED_BACK_RECORD:
        return {}
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    entries: dict[str, datetime] = {}
    for revision, text in record.items() if isinstance(record, dict) else ():
        try:
            when = datetime.fromisoformat(text) if isinstance(text, str) else None
        except ValueError:
            continue
        if when is not None:
            entries[revision] = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return entries


def rolled_back_record(annotations: Mapping[str, str], revision: str, when: datetime) -> str:
    """The rolled-back annotation with ``revision`` added, keeping the most recent readable entries."""
    record = {**rolled_back_revisions(annotations), revision: when}
    newest = sorted(record.items(), key=lambda item: item[1])[-ROLLED_BACK_HISTORY:]
    return json.dumps({r: at.isoformat() for r, at in newest}, sort_keys=True)
