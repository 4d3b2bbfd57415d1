"""What identifies a revision of a workload: the hash of its pod template, and the images it runs.

The webhook, the release engine and the Release record all name revisions by this hash, so it is
part of Ballast's vocabulary rather than of any one decision.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


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
