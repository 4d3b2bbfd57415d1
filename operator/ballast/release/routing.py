"""Exact canary weights through a Gateway API HTTPRoute, as pure functions over the route's plain JSON.

During a release the route's stable backend is replaced, in every rule that sends to it, by two Services
Ballast creates: one selecting only the stable pods (by their pod-template-hash) and one selecting only
the canary's pods. Their weights split the stable backend's original weight exactly by the step's
percentage; other backends of the same rule keep their share. The route's backendRefs before the
release are recorded in the Release's status, so restoring is exact, also after an operator restart.

A route whose backendRefs are neither what they were nor what Ballast writes at one of the release's
steps was changed by someone else: the release rolls back, and the restore keeps their edit, only
taking Ballast's two Services out of it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ballast.api.routing import GatewayRoute, GatewayRouteTemplate, RouteRecord, RouteRuleBackends

MAX_WEIGHT = 1_000_000
"""The largest backendRef weight the Gateway API allows."""
MAX_NAME = 63
"""A Service's name is a DNS label."""

Rules = Sequence[Mapping[str, Any]]
"""An HTTPRoute's ``spec.rules``."""
BackendRefs = list[dict[str, Any]]


def _service_name(deployment: str, suffix: str) -> str:
    name = f"{deployment}-{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(deployment.encode()).hexdigest()[:8]
    return f"{deployment[:MAX_NAME - len(suffix) - 10].rstrip('-.')}-{digest}-{suffix}"


def stable_service_name(deployment: str) -> str:
    """The Service Ballast creates for a release's stable pods only."""
    return _service_name(deployment, "ballast-stable")


def canary_service_name(deployment: str) -> str:
    """The Service Ballast creates for a release's canary pods."""
    return _service_name(deployment, "ballast-canary")


def canary_size(stable_replicas: int, weight: int) -> int:
    """Canary pods to carry ``weight``% of the traffic the stable pods carry all of today (>= 1)."""
    return max(1, math.ceil(stable_replicas * weight / 100))


# -- which route ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RouteChoice:
    """The route a release would drive, and whether someone named it for this service explicitly."""

    route: GatewayRoute
    explicit: bool
    """Named on the ServiceOwnership (it must exist), not templated from the tier (used where it exists)."""


def _fill(template: str, service: str, deployment: str) -> str:
    return template.replace("$service", service or deployment).replace("$deployment", deployment)


def choose_route(explicit: GatewayRoute | None, template: GatewayRouteTemplate | None, service: str,
                 deployment: str) -> RouteChoice | None:
    """The ServiceOwnership's route, else the tier's templated one, else None (replica split)."""
    if explicit is not None:
        return RouteChoice(explicit, explicit=True)
    if template is None:
        return None
    # Not validated: a filled-in name that no object can have is simply a route that does not exist.
    return RouteChoice(GatewayRoute.model_construct(name=_fill(template.name, service, deployment),
                                                    backend=_fill(template.backend, service, deployment),
                                                    port=template.port),
                       explicit=False)


def route_problem(choice: RouteChoice, rules: Rules | None, namespace: str, deployment: str,
                  backend_exists: bool = True, taken: Sequence[str] = ()) -> str | None:
    """Why a release cannot drive the chosen route (a sentence naming the object and the fix), or None.

    ``backend_exists``: the backend Service exists (its ports are copied); ``taken``: Ballast's Service names
    held by Services that are not the release's.
    """
    route = choice.route
    if rules is None:
        return (f"HTTPRoute {namespace}/{route.name} does not exist: create it, or name the right route in "
                "spec.traffic.gatewayRoute.")
    if held_by_a_release(rules, deployment):
        return (f"HTTPRoute {namespace}/{route.name} still sends traffic to an earlier release of {deployment} "
                f"(Services {canary_service_name(deployment)}, {stable_service_name(deployment)}): that release "
                f"hands it back when it ends; if none is running, put the route's backendRefs back to Service "
                f"{route.backend}.")
    original = original_backends(rules, route)
    if not original:
        port = f" port {route.port}" if route.port else ""
        return (f"HTTPRoute {namespace}/{route.name} has no backendRef to Service {route.backend}{port}: add it to "
                "the route, or correct spec.traffic.gatewayRoute.")
    if _too_heavy(original):
        return (f"HTTPRoute {namespace}/{route.name} has backend weights above {MAX_WEIGHT // 100}, too large to "
                "split exactly by whole percentages: scale the route's weights down.")
    if not backend_exists:
        return (f"Service {namespace}/{route.backend}, which HTTPRoute {route.name} sends to, does not exist: Ballast "
                "gives the release's Services its ports. Create it, or correct spec.traffic.gatewayRoute.backend.")
    if taken:
        return (f"Service {', '.join(f'{namespace}/{name}' for name in taken)} exists and is not the release's: "
                "Ballast needs that name to route the canary's traffic. Rename or delete it.")
    return None


def route_block(choice: RouteChoice | None, problem: str | None, required: bool, tier: str, service: str) -> str | None:
    """Why a release may not start yet for want of a usable route, or None.

    A route the ServiceOwnership names must be usable (``problem`` is None); a tier's templated route only
    where the tier requires a route (elsewhere an unusable one means the replica split).
    """
    if choice is None:
        if not required:
            return None
        who = f"service {service}" if service else "this Deployment"
        return (f"Tier {tier} requires a Gateway route, and {who} names none: set spec.traffic.gatewayRoute on "
                f"its ServiceOwnership (or gatewayRoute on the tier in the ReleasePolicy). The release waits "
                "until then.")
    if problem is None or not (choice.explicit or required):
        return None
    return f"{problem} The release waits until then."


def _too_heavy(original: list[RouteRuleBackends]) -> bool:
    return any(ref.get("weight", 1) * 100 > MAX_WEIGHT for r in original for ref in r.backend_refs)


def held_by_a_release(rules: Rules, deployment: str) -> bool:
    """Whether the route sends to the Services a release of ``deployment`` routes through."""
    ours = {stable_service_name(deployment), canary_service_name(deployment)}
    return any(ref.get("name") in ours for rule in rules for ref in rule.get("backendRefs") or [])


# -- the route's backends ----------------------------------------------------------------------------------

def _is_backend(ref: Mapping[str, Any], route: GatewayRoute) -> bool:
    return (ref.get("kind", "Service") == "Service" and ref.get("group", "") in ("", "core")
            and not ref.get("namespace") and ref.get("name") == route.backend
            and (route.port is None or ref.get("port") == route.port))


def original_backends(rules: Rules, route: GatewayRoute) -> list[RouteRuleBackends]:
    """The backendRefs of every rule that sends to the route's backend, as they are."""
    return [RouteRuleBackends(rule=index, backend_refs=[dict(ref) for ref in rule.get("backendRefs") or []])
            for index, rule in enumerate(rules)
            if any(_is_backend(ref, route) for ref in rule.get("backendRefs") or [])]


def record(choice: RouteChoice, rules: Rules, deployment: str) -> RouteRecord:
    """What a starting release records about its route."""
    route = choice.route
    return RouteRecord(name=route.name, backend=route.backend, port=route.port,
                       stable_service=stable_service_name(deployment), canary_service=canary_service_name(deployment),
                       original=original_backends(rules, route))


def _route_of(rec: RouteRecord) -> GatewayRoute:
    return GatewayRoute(name=rec.name, backend=rec.backend, port=rec.port)


def weighted_refs(rec: RouteRecord, refs: BackendRefs, weight: int) -> BackendRefs:
    """One rule's backendRefs with the canary at exactly ``weight``% of what the stable backend carried.

    The stable backend's weight W becomes W*(100-weight) on the stable pods' Service and W*weight on the
    canary's; other backends' weights are multiplied by 100, so they keep their share. All are then divided
    by the original weights' greatest common divisor, so they read as percentages where they can (a lone
    backend at 5% becomes 95 and 5). A route
    :func:`route_problem` accepts never exceeds the Gateway API's largest weight.
    """
    route = _route_of(rec)
    out: BackendRefs = []
    for ref in refs:
        own = ref.get("weight", 1)
        if _is_backend(ref, route):
            out.append({**ref, "name": rec.stable_service, "weight": own * (100 - weight)})
            out.append({**ref, "name": rec.canary_service, "weight": own * weight})
        else:
            out.append({**ref, "weight": own * 100})
    divisor = math.gcd(*(ref.get("weight", 1) for ref in refs))
    return [{**r, "weight": r["weight"] // divisor} for r in out] if divisor > 1 else out


def weighted_rules(rec: RouteRecord, weight: int) -> dict[int, BackendRefs]:
    """Rule index -> the backendRefs that give the canary ``weight``%."""
    return {r.rule: weighted_refs(rec, r.backend_refs, weight) for r in rec.original}


def shown_weights(rec: RouteRecord, weight: int) -> tuple[int, int]:
    """(stable, canary) weights as written in the first weighted rule, for the status."""
    refs = weighted_rules(rec, weight)[rec.original[0].rule]
    by_name = {r["name"]: r["weight"] for r in refs}
    return by_name[rec.stable_service], by_name[rec.canary_service]


def _normal(refs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """backendRefs with the API server's defaults filled in, so a written and a read route compare equal."""
    return [{"group": "", "kind": "Service", "weight": 1, **ref} for ref in refs]


def _current(rules: Rules, index: int) -> list[dict[str, Any]] | None:
    return _normal(rules[index].get("backendRefs") or []) if index < len(rules) else None


def at_weight(rec: RouteRecord, rules: Rules | None, weight: int) -> bool:
    """Whether the route gives the canary exactly ``weight``% now."""
    if rules is None:
        return False
    wanted = weighted_rules(rec, weight)
    return all(_current(rules, index) == _normal(refs) for index, refs in wanted.items())


def restored(rec: RouteRecord, rules: Rules | None) -> bool:
    """Whether the route sends nothing to Ballast's Services any more (or is gone)."""
    if rules is None:
        return True
    ours = {rec.stable_service, rec.canary_service}
    return not any(ref.get("name") in ours for rule in rules for ref in rule.get("backendRefs") or [])


def foreign_edit(rec: RouteRecord, rules: Rules | None, steps: Sequence[int]) -> str | None:
    """How the route differs from anything Ballast wrote or found (a sentence), or None.

    Every weighted rule must hold its original backendRefs or those of one of the release's steps.
    """
    if rules is None:
        return f"HTTPRoute {rec.name} was deleted during the release."
    for original in rec.original:
        current = _current(rules, original.rule)
        known = [_normal(original.backend_refs), *(_normal(weighted_refs(rec, original.backend_refs, w))
                                                    for w in steps)]
        if current not in known:
            return (f"HTTPRoute {rec.name} was changed by someone else during the release (rule "
                    f"{original.rule + 1}'s backendRefs are not what Ballast set).")
    return None


def restore_rules(rec: RouteRecord, rules: Rules | None) -> dict[int, BackendRefs]:
    """Rule index -> backendRefs that take the release out of the route; empty when nothing is to do.

    A route as Ballast left it gets its original backendRefs back exactly. A route someone else changed
    keeps their change: only Ballast's canary Service is taken out and its stable Service renamed back to
    the original backend, since both are deleted next.
    """
    if rules is None or restored(rec, rules):
        return {}
    if foreign_edit(rec, rules, range(0, 101)) is None:  # as Ballast left it, at whatever weight
        return {r.rule: [dict(ref) for ref in r.backend_refs] for r in rec.original}
    changes: dict[int, BackendRefs] = {}
    for index, rule in enumerate(rules):
        refs = rule.get("backendRefs") or []
        if not any(ref.get("name") in (rec.stable_service, rec.canary_service) for ref in refs):
            continue
        changes[index] = [{**ref, "name": rec.backend} if ref.get("name") == rec.stable_service else dict(ref)
                          for ref in refs if ref.get("name") != rec.canary_service]
    return changes
