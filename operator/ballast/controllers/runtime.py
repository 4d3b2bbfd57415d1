"""What every handler shares: the indexes, the operator's options and the reconcilers.

Kept in kopf's ``memo`` so handlers receive it as an argument instead of reaching for globals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from ballast.api.common import Condition
from ballast.api.releasepolicy import ReleasePolicySpec, RequiredAnnotations
from ballast.controllers.coalesce import Coalescer
from ballast.policy.conditions import Observation, merge_conditions
from ballast.policy.governance import Governance, PolicySelector, resolve_governance

NEGATIVE_CONDITIONS = frozenset({"Overlapping"})
"""Conditions for which True is the bad state (most are bad when False)."""


@dataclass(frozen=True)
class Options:
    """Operator options from the command line."""

    operator_namespace: str | None = None
    prometheus_url: str | None = None
    resync_seconds: float = 10.0


@dataclass
class Runtime:
    """Live indexes (filled by kopf) and the reconcilers built on them."""

    options: Options
    namespaces: kopf.Index
    deployments: kopf.Index
    ownerships: kopf.Index
    policies: kopf.Index
    ownership_reconciler: Coalescer | None = None
    policy_reconciler: Coalescer | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)

    def namespace_labels(self) -> dict[str, Mapping[str, str]]:
        return {name: next(iter(values), {}) for name, values in self.namespaces.items()}

    def parsed_policies(self) -> list[tuple[dict[str, Any], ReleasePolicySpec | None, str | None]]:
        """Every policy snapshot with its parsed spec, or the validation error as a sentence."""
        parsed = []
        for values in self.policies.values():
            for snap in values:
                try:
                    parsed.append((snap, ReleasePolicySpec.model_validate(snap["spec"]), None))
                except ValidationError as error:
                    parsed.append((snap, None, describe_validation_error(error)))
        return parsed

    def governance(self) -> Governance:
        """Which policy governs which namespace, from the current indexes."""
        selectors = []
        for snap, spec, _ in self.parsed_policies():
            if spec is None:
                spec = _selector_only(snap["spec"])
                if spec is None:
                    continue  # Without a readable selector the policy cannot govern anything.
            selectors.append(PolicySelector(
                name=snap["metadata"]["name"],
                namespace_selector=spec.namespace_selector,
                exempt_namespaces=frozenset(spec.admission.exempt_namespaces),
            ))
        exempt = [self.options.operator_namespace] if self.options.operator_namespace else []
        return resolve_governance(selectors, self.namespace_labels(), always_exempt=exempt)

    def required_annotations(self, namespace: str) -> RequiredAnnotations:
        """The annotation keys the namespace's governing policy requires (defaults when ungoverned)."""
        policy_name = self.governance().policy_of.get(namespace)
        for snap, spec, _ in self.parsed_policies():
            if spec is not None and snap["metadata"]["name"] == policy_name:
                return spec.admission.required_annotations
        return RequiredAnnotations()


def _selector_only(raw_spec: Mapping[str, Any]) -> ReleasePolicySpec | None:
    """An invalid policy still governs its namespaces (so guardrails never silently vanish)."""
    try:
        return ReleasePolicySpec.model_validate(
            {"namespaceSelector": raw_spec.get("namespaceSelector") or {},
             "admission": {"exemptNamespaces": (raw_spec.get("admission") or {}).get("exemptNamespaces") or []}}
        )
    except ValidationError:
        return None


def describe_validation_error(error: ValidationError) -> str:
    """One sentence per problem: where it is and what is wrong."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "spec"
        parts.append(f"spec.{where}: {item['msg']}")
    return "; ".join(parts)


def now() -> datetime:
    """Condition timestamps have second precision, like metav1.Time."""
    return datetime.now(UTC).replace(microsecond=0)


def updated_conditions(
    snap: Mapping[str, Any], observed: list[Observation]
) -> tuple[list[dict[str, Any]], list[Condition]]:
    """Merge observed conditions into the snapshot's, as wire dicts, plus the ones that changed."""
    existing = []
    for raw in (snap.get("status") or {}).get("conditions") or []:
        try:
            existing.append(Condition.model_validate(raw))
        except ValidationError:
            continue  # A hand-edited, malformed condition is replaced by a computed one.
    merged, changed = merge_conditions(existing, observed, now(), snap["metadata"].get("generation"))
    return [c.to_wire() for c in merged], changed


def post_condition_events(snap: Mapping[str, Any], changed: list[Condition]) -> None:
    """One event per changed condition: Warning when it moved into its bad state."""
    for condition in changed:
        bad = (condition.status == "True") == (condition.type in NEGATIVE_CONDITIONS)
        kopf.event(
            dict(snap),
            type="Warning" if bad else "Normal",
            reason=condition.reason,
            message=f"{condition.type} is {condition.status}: {condition.message}",
        )
