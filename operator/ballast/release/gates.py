"""Gates that make a release wait rather than refuse: its canary's name, the concurrency limit per
namespace and per owning team, and a spent error budget.

Releases queue in creation order: a waiting release may start only when the releases holding slots
plus the waiting releases created before it leave room under the limit. Releases awaiting approval
hold no slot and are not counted ahead of anyone: an unanswered approval must not stall a team.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from ballast.api.release import ACTIVE_PHASES, QUEUED_PHASES, WAITING_PHASES, ReleasePhase


class BlockKind(StrEnum):
    """Which gate holds a release back (recorded in ``status.blockedBy`` for the scoreboard)."""

    CANARY_NAME = "canary-name"
    CONCURRENCY = "concurrency"
    ERROR_BUDGET = "error-budget"
    GATEWAY_ROUTE = "gateway-route"
    """The service's HTTPRoute is missing or unusable, or its tier requires one and it names none."""


@dataclass(frozen=True)
class Block:
    kind: BlockKind
    message: str
    """A sentence naming what holds the release and how it gets free."""


@dataclass(frozen=True)
class ReleaseRef:
    namespace: str
    name: str
    owner: str
    phase: ReleasePhase
    created: datetime


@dataclass(frozen=True)
class ErrorBudget:
    """The service's SLO error budget, as far as the gate needs it."""

    service: str
    remaining: float | None
    """Share left over ``window``; None while unknown (no data), which never blocks."""
    window: str
    exempt_change_types: list[str]


@dataclass(frozen=True)
class GateInputs:
    me: ReleaseRef
    releases: list[ReleaseRef]
    """Every release the operator knows of, ``me`` included or not."""
    limit: int
    tier: str
    approval_pending: bool
    """The tier requires an approval that has not come yet: the release waits for it, holding no slot."""
    canary_name_taken: str | None = None
    """Why the canary's name is not free (a Deployment the release does not own has it), or None."""
    budget: ErrorBudget | None = None
    change_type: str = "feature"
    emergency: str | None = None


def waiting_block(inputs: GateInputs) -> Block | None:
    """What holds a waiting release back, in this order: its canary's name taken, the concurrency limit, a
    spent error budget; None when nothing does (or the release is past waiting)."""
    if inputs.me.phase not in WAITING_PHASES:
        return None
    if inputs.canary_name_taken:
        return Block(BlockKind.CANARY_NAME, inputs.canary_name_taken)
    if inputs.me.phase not in QUEUED_PHASES or inputs.approval_pending:
        return None
    if text := concurrency_block(inputs.me, inputs.releases, inputs.limit, inputs.tier):
        return Block(BlockKind.CONCURRENCY, text)
    budget = inputs.budget
    if budget is not None and (text := budget_block(budget.service, budget.remaining, budget.window,
                                                    inputs.change_type, inputs.emergency,
                                                    budget.exempt_change_types)):
        return Block(BlockKind.ERROR_BUDGET, text)
    return None


def concurrency_block(me: ReleaseRef, releases: Iterable[ReleaseRef], limit: int, tier: str) -> str | None:
    """Why ``me`` must wait, or None when it may start."""
    others = [r for r in releases if (r.namespace, r.name) != (me.namespace, me.name)]

    def occupied(scope: list[ReleaseRef]) -> int:
        active = sum(r.phase in ACTIVE_PHASES for r in scope)
        ahead = sum(r.phase in QUEUED_PHASES and (r.created, r.name) < (me.created, me.name) for r in scope)
        return active + ahead

    in_namespace = occupied([r for r in others if r.namespace == me.namespace])
    if in_namespace >= limit:
        return (f"{in_namespace} release(s) are progressing or queued ahead in namespace {me.namespace}; "
                f"tier {tier} allows {limit} at once. It starts when one finishes.")
    if me.owner:
        of_team = occupied([r for r in others if r.owner == me.owner])
        if of_team >= limit:
            return (f"{of_team} release(s) of team {me.owner} are progressing or queued ahead; tier {tier} allows "
                    f"{limit} at once. It starts when one finishes.")
    return None


def budget_block(service: str, remaining: float | None, window: str, change_type: str, emergency: str | None,
                 exempt_change_types: list[str]) -> str | None:
    """Why a release of a service whose error budget is spent must wait, or None.

    Only changes that restore reliability (by default fix, reliability, security) proceed, or any
    change with a break-glass reason. An unknown budget (no SLO, no data) never blocks.
    """
    if remaining is None or remaining > 0 or change_type in exempt_change_types or emergency:
        return None
    return (f"The error budget of service {service} is spent ({remaining:.0%} left over {window}): only "
            f"{', '.join(exempt_change_types)} changes proceed. Set ballast.dev/change-type accordingly, or "
            "break glass with ballast.dev/emergency.")
