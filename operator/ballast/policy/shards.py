"""Sharded operators and a policy's status: each shard's entry, the sums over them, and ``Sharded``.

Every shard (``ballast.api.shards``) writes only its own entry in a policy's status; whether the shards'
selectors together pick each of the policy's governed namespaces exactly once is judged here, against the
namespaces' current labels, and told in the policy's ``Sharded`` condition.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ballast.api.common import LabelSelector
from ballast.api.conditions import Observation
from ballast.api.shards import parse_selector
from ballast.policy.reports import bounded

STALE_SHARD_SECONDS = 300.0
"""A shard whose Lease is gone, or unchanged for this long by the reader's clock (a running leader renews it
every few seconds), has stopped: its entry lapses, so the namespaces it had show as without a shard
instead of being silently unattended."""

MAX_NAMED = 10
"""Namespaces a Sharded condition names; the rest are counted."""


@dataclass(frozen=True)
class Claim:
    """One shard's entry in a policy's status, as read back: who claims namespaces, and with what selector."""

    name: str
    selector_text: str
    lease: str
    """``namespace/name`` of the shard's leader Lease: its renewals say the shard still runs."""


@dataclass(frozen=True)
class Coverage:
    """How the shards' selectors divide a policy's governed namespaces."""

    counts: dict[str, int]
    """Shard name -> how many of the policy's namespaces its selector picks."""
    without_shard: list[str]
    """Governed namespaces no shard's selector picks: nobody reconciles, audits or releases there."""
    in_several: dict[str, list[str]]
    """Governed namespace -> the shards whose selectors all pick it."""


def coverage(governed: Iterable[str], labels: Mapping[str, Mapping[str, str]],
             claims: Sequence[Claim]) -> Coverage:
    """Which shard selectors pick each governed namespace, judged against the namespaces' current labels."""
    selectors = [(c.name, parse_or_none(c.selector_text)) for c in claims]
    counts = {name: 0 for name, _ in selectors}
    without, several = [], {}
    for namespace in sorted(governed):
        picked = [name for name, selector in selectors
                  if selector is not None and selector.matches(labels.get(namespace))]
        for name in picked:
            counts[name] += 1
        if not picked:
            without.append(namespace)
        elif len(picked) > 1:
            several[namespace] = picked
    return Coverage(counts, without, several)


def parse_or_none(text: str) -> LabelSelector | None:
    """A claim written by another shard's operator: one this version cannot read picks nothing."""
    try:
        return parse_selector(text)
    except ValueError:  # SelectorError, or a key the API types refuse
        return None


def _named(namespaces: Sequence[str]) -> str:
    more = f" (and {len(namespaces) - MAX_NAMED} more)" if len(namespaces) > MAX_NAMED else ""
    return ", ".join(namespaces[:MAX_NAMED]) + more


def sharded_condition(policy: str, claims: Sequence[Claim], found: Coverage) -> Observation:
    """``Sharded``: True when every governed namespace is picked by exactly one live shard."""
    described = "; ".join(f"{c.name}: '{c.selector_text}'" for c in sorted(claims, key=lambda c: c.name))
    problems = []
    if found.in_several:
        several = [f"{ns} is picked by shards {' and '.join(names)}" for ns, names in found.in_several.items()]
        more = f" (and {len(several) - MAX_NAMED} more)" if len(several) > MAX_NAMED else ""
        problems.append(f"namespace {'; namespace '.join(several[:MAX_NAMED])}{more}, so two operators act "
                        "there: make the shards' selectors disjoint")
    if found.without_shard:
        problems.append(f"namespaces {_named(found.without_shard)} match no running shard's selector, so no "
                        "operator reconciles or releases there: label them for a shard, or run a shard whose "
                        "selector picks them")
    if problems:
        reason = "NamespacesInSeveralShards" if found.in_several else "NamespacesWithoutShard"
        return Observation("Sharded", False, reason,
                           f"ReleasePolicy {policy}: {'; '.join(problems)} (shards {described}).")
    counts = ", ".join(f"{name} {count}" for name, count in sorted(found.counts.items()))
    total = sum(found.counts.values())
    return Observation("Sharded", True, "ShardsPartitionNamespaces",
                       f"Each of the {total} governed namespace(s) is governed by exactly one shard ({counts}).")


def claims_of(entries: Iterable[Mapping[str, Any]]) -> list[Claim]:
    """The claims of a policy status's shard entries; an entry without a name claims nothing."""
    return [Claim(str(e["name"]), str(e.get("selector") or ""), str(e.get("lease") or ""))
            for e in entries if isinstance(e, Mapping) and e.get("name")]


def shard_entries(own: Mapping[str, Any], previous: Iterable[Mapping[str, Any]], lapsed: Collection[str]
                  ) -> list[dict[str, Any]]:
    """A policy status's shard entries once this shard writes ``own``: its old entry replaced, the entries of
    shards that have stopped (``lapsed``) dropped, by name."""
    kept = {str(e["name"]): dict(e) for e in previous
            if isinstance(e, Mapping) and e.get("name") and e["name"] not in lapsed}
    kept[str(own["name"])] = dict(own)
    return [kept[name] for name in sorted(kept)]


def summed_violations(entries: Sequence[Mapping[str, Any]]) -> tuple[int, list[dict[str, Any]]]:
    """The policy's violation count and listed violations: every shard's, in namespace and name order."""
    count = sum(int(e.get("violationCount") or 0) for e in entries)
    listed = sorted((v for e in entries for v in e.get("violations") or [] if isinstance(v, Mapping)),
                    key=lambda v: (str(v.get("namespace")), str(v.get("kind")), str(v.get("name"))))
    return count, bounded(dict(v) for v in listed)
