"""A shard of the operator: a name and a label selector over namespaces (``--shard``, ``--shard-selector``).

Several operator Deployments, each one shard, divide the namespaces between them: each acts (reconciles,
audits, releases) only where its selector picks the namespace's labels, and its webhook configurations send
it only those namespaces' requests. Selectors are written as ``kubectl get -l`` takes them. Whether the
shards together pick each governed namespace exactly once is decided in ``ballast.policy.shards``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ballast.api.common import LabelSelector, LabelSelectorRequirement

SHARD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
"""A shard's name goes into webhook configuration names and the policy's status: a short DNS label."""

_KEY = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_EQUALITY = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})$")
_EXISTS = re.compile(rf"^(?P<absent>!?)\s*(?P<key>{_KEY})$")

class SelectorError(ValueError):
    """A shard selector that cannot be read; the message says which part and what is expected."""


@dataclass(frozen=True)
class Shard:
    """This operator's shard: its name, its selector as given, and the selector parsed."""

    name: str
    selector_text: str
    selector: LabelSelector

    def governs(self, labels: Mapping[str, str] | None) -> bool:
        return self.selector.matches(labels)


def _requirements(text: str) -> list[str]:
    """The selector's comma-separated requirements; commas inside ``( )`` separate values instead."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth not in (0, 1):
            raise SelectorError(f"unbalanced parentheses in {text!r}")
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if depth:
        raise SelectorError(f"unbalanced parentheses in {text!r}")
    parts.append(current.strip())
    return parts


def _requirement(part: str) -> LabelSelectorRequirement:
    if found := _SET.match(part):
        values = [v.strip() for v in found["values"].split(",")]
        if not all(values) or not all(re.fullmatch(_VALUE, v) for v in values):
            raise SelectorError(f"{part!r} needs a list of label values, as in 'tier in (a, b)'")
        return LabelSelectorRequirement(key=found["key"], operator="In" if found["op"] == "in" else "NotIn",
                                        values=values)
    if found := _EQUALITY.match(part):
        return LabelSelectorRequirement(key=found["key"], operator="NotIn" if found["op"] == "!=" else "In",
                                        values=[found["value"]])
    if found := _EXISTS.match(part):
        return LabelSelectorRequirement(key=found["key"], operator="DoesNotExist" if found["absent"] else "Exists")
    raise SelectorError(f"{part!r} is not a label requirement: use key=value, key!=value, key in (a,b), "
                        "key notin (a,b), key or !key")


def parse_selector(text: str) -> LabelSelector:
    """A label selector in ``kubectl -l`` syntax, e.g. ``!ballast.dev/shard`` or ``ballast.dev/shard=b``.

    The empty selector selects every namespace, as in Kubernetes.
    """
    if not text.strip():
        return LabelSelector()
    return LabelSelector(match_expressions=[_requirement(part) for part in _requirements(text)])


def shard(name: str, selector_text: str) -> Shard:
    if not SHARD_NAME.match(name):
        raise SelectorError(f"shard name {name!r} must be a DNS label of at most 32 characters (a-z, 0-9, '-')")
    return Shard(name, selector_text, parse_selector(selector_text))


def within_shard(selector: dict[str, Any], of: Shard) -> dict[str, Any]:
    """A webhook's namespaceSelector (wire form) narrowed to the shard's namespaces: both must match."""
    narrowed = {key: value for key, value in selector.items() if key != "matchExpressions"}
    expressions = list(selector.get("matchExpressions") or [])
    expressions += [e.to_wire() for e in of.selector.match_expressions]
    expressions += [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(of.selector.match_labels.items())]
    if expressions:
        narrowed["matchExpressions"] = expressions
    return narrowed
