"""Which ReleasePolicy governs which namespace.

Policies may overlap. Each namespace is governed by exactly one policy: the one whose namespace
selector is most specific (most constraints), then the first by name. Both the winner and the loser
are told, so a platform team sees an overlap in ``kubectl get releasepolicies`` rather than by surprise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ballast.api.common import LabelSelector
from ballast.api.conditions import Observation

SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
"""Namespaces no policy ever governs: breaking the cluster's own components is never a guardrail."""


@dataclass(frozen=True)
class PolicySelector:
    """The part of a ReleasePolicy that decides what it governs."""

    name: str
    namespace_selector: LabelSelector
    exempt_namespaces: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Overlap:
    """A namespace two policies both select."""

    namespace: str
    other_policy: str
    winner: str


@dataclass
class Governance:
    """The outcome of resolving all policies against all namespaces."""

    policy_of: dict[str, str] = field(default_factory=dict)
    """namespace -> governing policy name."""
    governed: dict[str, list[str]] = field(default_factory=dict)
    """policy name -> namespaces it governs, sorted."""
    overlaps: dict[str, list[Overlap]] = field(default_factory=dict)
    """policy name -> overlaps it takes part in, sorted by namespace."""


def _precedence(policy: PolicySelector) -> tuple[int, str]:
    return (-policy.namespace_selector.specificity, policy.name)


def resolve_governance(
    policies: Iterable[PolicySelector],
    namespaces: Mapping[str, Mapping[str, str]],
    always_exempt: Iterable[str] = (),
) -> Governance:
    """Assign each namespace (name -> labels) to at most one policy and record every overlap."""
    ordered = sorted(policies, key=_precedence)
    exempt = SYSTEM_NAMESPACES | frozenset(always_exempt)
    result = Governance(
        governed={p.name: [] for p in ordered},
        overlaps={p.name: [] for p in ordered},
    )
    for namespace in sorted(namespaces):
        if namespace in exempt:
            continue
        labels = dict(namespaces[namespace])
        matching = [
            p for p in ordered
            if namespace not in p.exempt_namespaces and p.namespace_selector.matches(labels)
        ]
        if not matching:
            continue
        winner = matching[0]
        result.policy_of[namespace] = winner.name
        result.governed[winner.name].append(namespace)
        for loser in matching[1:]:
            result.overlaps[winner.name].append(Overlap(namespace, loser.name, winner.name))
            result.overlaps[loser.name].append(Overlap(namespace, winner.name, winner.name))
    return result


def policy_conditions(name: str, governance: Governance, invalid: str | None = None) -> list[Observation]:
    """Ready, Valid, NamespacesMatched and Overlapping for one policy, with messages that name the fix."""
    governed = governance.governed.get(name, [])
    overlaps = governance.overlaps.get(name, [])
    valid = Observation(
        "Valid", invalid is None,
        "Valid" if invalid is None else "InvalidSpec",
        "The policy's rules are well-formed." if invalid is None
        else f"ReleasePolicy {name} is invalid and is not applied: {invalid}",
    )
    matched = Observation(
        "NamespacesMatched", bool(governed),
        "NamespacesMatched" if governed else "SelectorMatchesNothing",
        f"Governs {len(governed)} namespace(s)." if governed
        else "spec.namespaceSelector matches no namespace that another policy does not already win: "
        "label the namespaces to govern or widen the selector.",
    )
    if overlaps:
        described = "; ".join(
            f"namespace {o.namespace} is also selected by ReleasePolicy {o.other_policy}, {o.winner} wins"
            for o in overlaps[:10]
        )
        more = f" (and {len(overlaps) - 10} more)" if len(overlaps) > 10 else ""
        overlapping = Observation(
            "Overlapping", True, "OverlapsOtherPolicy",
            f"{described}{more}. The most specific selector wins, then the first name: make the "
            "selectors disjoint to remove doubt.",
        )
    else:
        overlapping = Observation("Overlapping", False, "NoOverlap", "No other policy selects these namespaces.")
    if invalid is not None:
        ready = Observation("Ready", False, "InvalidSpec", "The policy is invalid; see Valid.")
    elif not governed:
        ready = Observation("Ready", False, "SelectorMatchesNothing", "The policy governs no namespace.")
    else:
        ready = Observation("Ready", True, "Ready", f"Governing {len(governed)} namespace(s).")
    return [ready, valid, matched, overlapping]
