"""What Ballast tells chat and webhook receivers, and which receivers hear it. Pure: controllers/notifications.py
delivers the messages, off the release passes and admission."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ballast.api.notifications import NotificationEvent, NotificationReceiver, ReceiverType
from ballast.api.release import AnalysisResult, ReleasePhase, ReleaseSpec, ReleaseStatus, TrafficSample, Verdict
from ballast.api.releasepolicy import FreezeRefusal
from ballast.policy.rules import BreakGlass

RELEASE_EVENTS = {
    ReleasePhase.AWAITING_APPROVAL: NotificationEvent.AWAITING_APPROVAL,
    ReleasePhase.BLOCKED: NotificationEvent.BLOCKED,
    ReleasePhase.ROLLED_BACK: NotificationEvent.ROLLED_BACK,
    ReleasePhase.PROMOTED: NotificationEvent.PROMOTED,
}
"""The release phases receivers hear about, when a release enters them."""

ICONS = {
    NotificationEvent.AWAITING_APPROVAL: ":hourglass:", NotificationEvent.BLOCKED: ":no_entry:",
    NotificationEvent.ROLLED_BACK: ":rewind:", NotificationEvent.PROMOTED: ":white_check_mark:",
    NotificationEvent.BREAK_GLASS: ":rotating_light:", NotificationEvent.FREEZE_REFUSED: ":snowflake:",
}


@dataclass(frozen=True)
class Notice:
    """One thing that happened, as every receiver is told it."""

    event: NotificationEvent
    policy: str
    namespace: str
    kind: str
    name: str
    summary: str
    """One sentence naming the object, what happened and why."""
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, ...]:
        """Identifies a repeat (a retried refused change) so it is sent once."""
        return (self.event.value, self.namespace, self.kind, self.name, str(self.details.get("revision", "")))


def receivers_for(receivers: Sequence[NotificationReceiver], event: NotificationEvent) -> list[NotificationReceiver]:
    """The receivers that asked for ``event`` (an empty ``events`` list asks for all)."""
    return [r for r in receivers if not r.events or event in r.events]


def _rate(sample: TrafficSample) -> str:
    if sample.error_rate is None:
        return "no data"
    return f"{sample.error_rate:.2%} errors of {sample.requests or 0:g} requests"


def _failed_analysis(status: ReleaseStatus) -> AnalysisResult | None:
    """The analysis that condemned the canary: the last Fail (or Error), else the last one."""
    for analysis in reversed(status.analyses):
        if analysis.verdict in (Verdict.FAIL, Verdict.ERROR):
            return analysis
    return status.analyses[-1] if status.analyses else None


def release_notice(name: str, namespace: str, spec: ReleaseSpec, status: ReleaseStatus, at: datetime
                   ) -> Notice | None:
    """The notice for a release entering ``status.phase``; None for phases receivers do not hear about."""
    event = RELEASE_EVENTS.get(status.phase)
    if event is None:
        return None
    subject = f"Deployment {namespace}/{spec.deployment}"
    details: dict[str, Any] = {
        "release": name, "deployment": spec.deployment, "service": spec.service, "owner": spec.owner,
        "tier": spec.tier.value, "revision": spec.to_revision, "images": spec.to_images,
        "reason": status.reason, "message": status.message,
    }
    if spec.changed_by is not None:
        details["changedBy"] = spec.changed_by.username
    summary = {
        NotificationEvent.AWAITING_APPROVAL: f"Release {name} of {subject} ({spec.tier.value} tier) awaits approval: "
                                             f"kubectl ballast approve {spec.deployment} -n {namespace}.",
        NotificationEvent.BLOCKED: f"Release {name} of {subject} is blocked: {status.message}",
        NotificationEvent.PROMOTED: f"Release {name} of {subject} was promoted: {status.message}",
        NotificationEvent.ROLLED_BACK: f"Release {name} of {subject} was rolled back: {status.message}",
    }[event]
    summary = summary if summary.endswith(".") else summary + "."
    analysis = _failed_analysis(status) if event is NotificationEvent.ROLLED_BACK else None
    if analysis is not None:
        details["analysis"] = analysis.to_wire()
        summary += (f" Step {analysis.step + 1} at {analysis.weight}%: {analysis.verdict.value}, canary "
                    f"{_rate(analysis.canary)}, baseline {_rate(analysis.baseline)}.")
    return Notice(event, spec.policy, namespace, "Release", name, summary, at, details)


def break_glass_notice(policy: str, kind: str, namespace: str, name: str, glass: BreakGlass, at: datetime
                       ) -> Notice:
    """The notice for a change made with ``ballast.dev/emergency``."""
    through = f"through freeze window {glass.window}" if glass.window else "with no freeze window open"
    summary = (f"{glass.username or 'Someone'} broke glass on {kind} {namespace}/{name} {through} "
               f"(ReleasePolicy {policy}): {glass.reason}")
    return Notice(NotificationEvent.BREAK_GLASS, policy, namespace, kind, name, summary, at,
                  {"window": glass.window, "reason": glass.reason, "username": glass.username})


def freeze_notice(policy: str, refusal: FreezeRefusal) -> Notice:
    """The notice for a change a freeze window refused."""
    who = f" by {refusal.username}" if refusal.username else ""
    summary = (f"A change{who} to {refusal.kind} {refusal.namespace}/{refusal.name} ({refusal.tier.value} tier) was "
               f"refused by freeze window {refusal.window} of ReleasePolicy {policy}.")
    return Notice(NotificationEvent.FREEZE_REFUSED, policy, refusal.namespace, refusal.kind, refusal.name, summary,
                  refusal.at, {"window": refusal.window, "tier": refusal.tier.value, "team": refusal.team,
                               "username": refusal.username, "revision": refusal.revision})


def payload(receiver_type: ReceiverType, notice: Notice) -> dict[str, Any]:
    """The JSON body a receiver of ``receiver_type`` is sent."""
    if receiver_type is ReceiverType.SLACK:
        return {"text": f"{ICONS[notice.event]} *{notice.event.value}* {notice.summary}"}
    return {
        "source": "ballast", "event": notice.event.value, "summary": notice.summary, "at": notice.at.isoformat(),
        "policy": notice.policy,
        "object": {"kind": notice.kind, "namespace": notice.namespace, "name": notice.name},
        "details": notice.details,
    }
