"""kopf's start-up at 10,000 objects: once indexed, a watched object's event holds only its metadata.

kopf (1.45) runs an object's indexers and then parks the object's worker until every listed object of
every indexed kind is indexed (``kopf/_core/reactor/processing.py``, ``process_resource_event``: after
``indexing.index_resource``, ``operator_indexed.wait_for(True)``). Each parked worker holds the whole parsed
body of its event: 13 KiB for one of the scale benchmark's Deployments (a 2.6 KiB JSON document; most of it
``managedFields``, the pod template and the status), 5 KiB for a ServiceOwnership. At 10,000 of each, that
alone was 180 MiB of the operator's peak memory, and Python keeps a peak's memory afterwards.

Nothing reads those parts after the indexers have taken their snapshots (``controllers/indexes.py``):

- Ballast's only other handlers for these kinds are the ``on.event`` triggers (``controllers/triggers.py``),
  which read the metadata: name, namespace, labels, annotations, owners, generation (``is_canary`` too);
- kopf itself, for a resource with only watching handlers and indexers, reads the metadata: finalizers and
  deletion timestamp (finalizer bookkeeping), name, namespace and uid (loggers, patches). It also builds a
  diffbase from the spec, but uses that diff only for changing handlers (``on.create``/``on.update``...)
  and daemons, which read the whole body. A resource with either is never shed (:func:`sheddable`).

So once the indexers have run, :func:`shed` drops the event's ``spec``, ``status`` and
``metadata.managedFields`` in place (the raw event and the ``kopf.Body`` over it are the same dicts), and
every handler still finds what it reads. Indexes are unaffected: they hold copies, and dropping a key from
the body never changes the dict it named.

Since ``controllers/toggles.py`` no longer lets kopf park the workers, a listed body is held only while its
worker handles it and idles (kopf's ``idle_timeout``, 5 s), not until every kind is indexed; shedding still
keeps those in-flight bodies small, and is what keeps memory down where the toggle sets could not be
replaced (a kopf of another shape), since kopf then parks every worker again.

This leans on kopf internals, like ``controllers/toggles.py``: :func:`shed_after_indexing` wraps
``kopf._core.engines.indexing.index_resource``, which ``process_resource_event`` looks up on its module at
every call; if that function or the registry's shape has changed, it logs a warning and leaves kopf alone
(the operator then works as before, with the memory of before).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from kopf._core.engines import indexing
from kopf._core.intents import registries

logger = logging.getLogger(__name__)

SHED_PLURALS = frozenset({"deployments", "statefulsets", "daemonsets", "serviceownerships", "releases"})
"""The kinds Ballast indexes by the thousand and whose event handlers read only metadata (``triggers.py``).
ReleasePolicies and namespaces are few, so they keep whole bodies: nothing to gain."""

UNREAD_TOP_LEVEL = ("spec", "status")
UNREAD_METADATA = ("managedFields",)


def shed(raw_body: MutableMapping[str, Any]) -> None:
    """Drop in place what no handler reads after indexing: spec, status and managedFields."""
    for key in UNREAD_TOP_LEVEL:
        raw_body.pop(key, None)
    metadata = raw_body.get("metadata")
    if isinstance(metadata, MutableMapping):
        for key in UNREAD_METADATA:
            metadata.pop(key, None)


def sheddable(registry: Any, resource: Any) -> bool:
    """Whether a resource's events may be shed: one of :data:`SHED_PLURALS`, with no handler that reads more
    than metadata (changing handlers and daemons read the whole body and kopf's diff of it)."""
    if getattr(resource, "plural", None) not in SHED_PLURALS:
        return False
    return not (registry._changing.has_handlers(resource=resource)
                or registry._spawning.has_handlers(resource=resource))


IndexResource = Callable[..., Awaitable[None]]


def shedding(index_resource: IndexResource) -> IndexResource:
    """``index_resource`` followed by :func:`shed` of the event's body, where :func:`sheddable`."""

    @functools.wraps(index_resource)
    async def index_then_shed(**kwargs: Any) -> None:
        await index_resource(**kwargs)
        if sheddable(kwargs["registry"], kwargs["resource"]):
            shed(kwargs["raw_event"]["object"])

    index_then_shed.sheds = True  # type: ignore[attr-defined]
    return index_then_shed


def shed_after_indexing() -> None:
    """Make kopf shed every sheddable event once indexed (idempotent; a warning if kopf changed shape)."""
    original = getattr(indexing, "index_resource", None)
    if getattr(original, "sheds", False):
        return
    probe = registries.OperatorRegistry()
    if original is None or not all(hasattr(getattr(probe, name, None), "has_handlers")
                                   for name in ("_changing", "_spawning")):
        logger.warning("kopf's indexing has changed shape; listed objects keep their whole bodies while kopf "
                       "waits for its indexes (more memory at start-up, nothing else changes).")
        return
    indexing.index_resource = shedding(original)  # type: ignore[assignment]
