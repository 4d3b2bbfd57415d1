"""Exact traffic weights through a Gateway API ``HTTPRoute`` (``gateway.networking.k8s.io/v1``).

Opt-in: a ServiceOwnership names its route in ``spec.traffic.gatewayRoute``, or a policy tier names one
for every service of the tier (``gatewayRoute``, templated with ``$service`` and ``$deployment``). Without
either, the canary's share of traffic is its share of the pods (replica split), as before.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from ballast.api.common import ApiModel

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_TEMPLATED_NAME = r"^[-a-z0-9.$]+$"

Port = Annotated[int, Field(ge=1, le=65535)]
ROUTE_VARIABLES = ("$service", "$deployment")


def _known_variables(template: str) -> str:
    unknown = sorted(set(re.findall(r"\$[a-z]*", template)) - set(ROUTE_VARIABLES))
    if unknown:
        raise ValueError(f"{template!r} uses {', '.join(unknown)}; a route template knows only "
                         f"{' and '.join(ROUTE_VARIABLES)}")
    return template


RouteTemplate = Annotated[str, Field(default="$service", min_length=1, max_length=253, pattern=_TEMPLATED_NAME),
                          AfterValidator(_known_variables)]


class GatewayRoute(ApiModel):
    """An HTTPRoute in the Deployment's namespace whose backend weights Ballast sets during a release."""

    name: str = Field(min_length=1, max_length=253, pattern=_DNS_SUBDOMAIN)
    """The HTTPRoute's name."""
    backend: str = Field(min_length=1, max_length=63, pattern=_DNS_SUBDOMAIN)
    """The stable Service, as the route's ``backendRefs`` name it."""
    port: Port | None = None
    """Only the route's backendRefs to this Service port; all of them when left out."""


class TrafficRouting(ApiModel):
    """How a service's traffic reaches its canary."""

    gateway_route: GatewayRoute | None = None
    """Shift exact weights through this HTTPRoute; without it, the canary's share is its share of the pods."""


class GatewayRouteTemplate(ApiModel):
    """A tier's HTTPRoute for every service of the tier that names none, by name templates.

    ``$service`` is the ServiceOwnership's name (the Deployment's where none answers for it) and
    ``$deployment`` the Deployment's. A templated route that does not exist leaves that service on the
    replica split, unless the tier requires a route.
    """

    name: RouteTemplate = "$service"
    """The HTTPRoute's name."""
    backend: RouteTemplate = "$service"
    """The stable Service, as the route's ``backendRefs`` name it."""
    port: Port | None = None
    """Only the route's backendRefs to this Service port; all of them when left out."""


class RoutingMode(StrEnum):
    """How a release's canary gets its share of the traffic."""

    REPLICA_SPLIT = "ReplicaSplit"
    """The Service selects stable and canary pods alike: the canary's share is its share of the pods."""
    GATEWAY_ROUTE = "GatewayRoute"
    """Ballast sets an HTTPRoute's backend weights: the canary's share is exactly the step's weight."""


class RouteRuleBackends(ApiModel):
    """The backendRefs of one rule of the route, as the API server held them."""

    rule: int = Field(ge=0)
    """Index of the rule in ``spec.rules``."""
    backend_refs: list[dict[str, Any]] = Field(default_factory=list, max_length=16)
    """The rule's backendRefs, exactly."""


class RouteRecord(ApiModel):
    """The HTTPRoute a release drives: what it was before (to restore it exactly) and the weights set."""

    name: str
    """The HTTPRoute's name."""
    backend: str
    """The stable Service the route sends to outside releases."""
    port: Port | None = None
    """The Service port whose backendRefs are weighted, where the route names several."""
    stable_service: str
    """The Service Ballast creates for the release's stable pods only (the route's stable side)."""
    canary_service: str
    """The Service Ballast creates for the canary's pods (the route's canary side)."""
    original: list[RouteRuleBackends] = Field(default_factory=list, max_length=64)
    """The backendRefs of every rule that sends to ``backend``, before the release touched them."""
    stable_weight: int | None = Field(default=None, ge=0)
    """The stable side's weight Ballast last set (in the first weighted rule); None while untouched."""
    canary_weight: int | None = Field(default=None, ge=0)
    """The canary's weight Ballast last set (in the first weighted rule); None while untouched."""
