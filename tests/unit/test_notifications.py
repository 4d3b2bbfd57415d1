"""What receivers are told, and which receivers hear it (policy/notifications.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ballast.api.common import RiskTier
from ballast.api.notifications import NotificationEvent, NotificationReceiver, ReceiverType
from ballast.api.release import (
    AnalysisResult,
    ReleasePhase,
    ReleaseSpec,
    ReleaseStatus,
    TrafficSample,
    UserInfo,
    Verdict,
)
from ballast.api.releasepolicy import FreezeRefusal, ReleasePolicySpec
from ballast.policy.notifications import (
    break_glass_notice,
    freeze_notice,
    payload,
    receivers_for,
    release_notice,
)
from ballast.policy.rules import BreakGlass

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SPEC = ReleaseSpec(deployment="checkout", service="checkout", owner="payments", tier=RiskTier.HIGH, policy="prod",
                   to_revision="abc123", to_images=["shop:2.0"], changed_by=UserInfo(username="alice"))


def receiver(name: str, type_: str = "Webhook", events: list[str] | None = None) -> NotificationReceiver:
    return NotificationReceiver.model_validate({"name": name, "type": type_, "events": events or [],
                                                "urlSecretRef": {"namespace": "ops", "name": "hooks"}})


def analysis(step: int, verdict: Verdict, canary: float, baseline: float) -> AnalysisResult:
    return AnalysisResult(step=step, weight=10 * (step + 1), window_start=NOW, window_end=NOW, verdict=verdict,
                          canary=TrafficSample(requests=400, errors=canary * 400, error_rate=canary),
                          baseline=TrafficSample(requests=3600, errors=baseline * 3600, error_rate=baseline))


def test_receivers_hear_the_events_they_asked_for_and_all_by_default():
    everything, rollbacks = receiver("all"), receiver("rollbacks", events=["RolledBack"])
    assert receivers_for([everything, rollbacks], NotificationEvent.ROLLED_BACK) == [everything, rollbacks]
    assert receivers_for([everything, rollbacks], NotificationEvent.PROMOTED) == [everything]


def test_the_secret_key_defaults_to_url_and_types_and_events_are_checked():
    assert receiver("a").url_secret_ref.key == "url"
    spec = ReleasePolicySpec.model_validate({"notifications": [
        {"name": "chat", "type": "Slack", "urlSecretRef": {"namespace": "ops", "name": "slack", "key": "hook"}}]})
    assert spec.notifications[0].type is ReceiverType.SLACK
    for bad in ({"type": "Email"}, {"events": ["Deployed"]}, {"name": "Not A Label"}):
        with pytest.raises(ValidationError):
            NotificationReceiver.model_validate({"name": "a", "type": "Webhook",
                                                 "urlSecretRef": {"namespace": "ops", "name": "s"}, **bad})


@pytest.mark.parametrize("phase", [p for p in ReleasePhase if p not in
                                   (ReleasePhase.AWAITING_APPROVAL, ReleasePhase.BLOCKED, ReleasePhase.ROLLED_BACK,
                                    ReleasePhase.PROMOTED)])
def test_other_phases_are_not_notified(phase):
    assert release_notice("checkout-abc", "shop", SPEC, ReleaseStatus(phase=phase), NOW) is None


def test_a_rollback_carries_the_verdicts_numbers():
    status = ReleaseStatus(phase=ReleasePhase.ROLLED_BACK, reason="AnalysisFailed",
                           message="the canary's error rate is above the baseline's",
                           analyses=[analysis(0, Verdict.PASS, 0.001, 0.001), analysis(1, Verdict.FAIL, 0.12, 0.01),
                                     analysis(1, Verdict.INCONCLUSIVE, 0.0, 0.0)])
    notice = release_notice("checkout-abc", "shop", SPEC, status, NOW)
    assert notice.event is NotificationEvent.ROLLED_BACK
    assert notice.summary == (
        "Release checkout-abc of Deployment shop/checkout was rolled back: the canary's error rate is above the "
        "baseline's. Step 2 at 20%: Fail, canary 12.00% errors of 400 requests, baseline 1.00% errors of 3600 "
        "requests.")
    assert notice.details["analysis"]["canary"]["errorRate"] == 0.12
    assert notice.details["changedBy"] == "alice" and notice.details["revision"] == "abc123"
    body = payload(ReceiverType.WEBHOOK, notice)
    assert body["event"] == "RolledBack" and body["policy"] == "prod" and body["at"] == NOW.isoformat()
    assert body["object"] == {"kind": "Release", "namespace": "shop", "name": "checkout-abc"}
    assert payload(ReceiverType.SLACK, notice) == {"text": f":rewind: *RolledBack* {notice.summary}"}


def test_a_rollback_without_analyses_says_why_without_numbers():
    status = ReleaseStatus(phase=ReleasePhase.ROLLED_BACK, message="aborted by bob: bad config")
    notice = release_notice("r", "shop", SPEC, status, NOW)
    assert notice.summary == "Release r of Deployment shop/checkout was rolled back: aborted by bob: bad config."
    assert "analysis" not in notice.details


def test_awaiting_approval_blocked_and_promoted_say_what_and_why():
    waiting = release_notice("r", "shop", SPEC, ReleaseStatus(phase=ReleasePhase.AWAITING_APPROVAL), NOW)
    assert "awaits approval: kubectl ballast approve checkout -n shop." in waiting.summary
    assert "(high tier)" in waiting.summary
    blocked = release_notice("r", "shop", SPEC, ReleaseStatus(
        phase=ReleasePhase.BLOCKED, reason="ErrorBudgetExhausted", message="service checkout has spent its budget"),
        NOW)
    assert blocked.summary == "Release r of Deployment shop/checkout is blocked: service checkout has spent its budget."
    assert blocked.details["reason"] == "ErrorBudgetExhausted"
    promoted = release_notice("r", "shop", SPEC, ReleaseStatus(phase=ReleasePhase.PROMOTED, message="all steps passed"),
                              NOW)
    assert promoted.event is NotificationEvent.PROMOTED and promoted.summary.endswith("was promoted: all steps passed.")


def test_break_glass_and_freeze_refusals():
    glass = break_glass_notice("prod", "Deployment", "shop", "checkout",
                               BreakGlass(window="black-friday", reason="INC-42 hotfix", username="alice"), NOW)
    assert glass.summary == ("alice broke glass on Deployment shop/checkout through freeze window black-friday "
                             "(ReleasePolicy prod): INC-42 hotfix")
    refused = freeze_notice("prod", FreezeRefusal(at=NOW, kind="Deployment", namespace="shop", name="checkout",
                                                  revision="r2", tier=RiskTier.CRITICAL, window="black-friday",
                                                  username="bob", team="payments"))
    assert refused.event is NotificationEvent.FREEZE_REFUSED
    assert refused.summary == ("A change by bob to Deployment shop/checkout (critical tier) was refused by freeze "
                               "window black-friday of ReleasePolicy prod.")
    again = freeze_notice("prod", FreezeRefusal(at=NOW, kind="Deployment", namespace="shop", name="checkout",
                                                 revision="r3", tier=RiskTier.CRITICAL, window="black-friday"))
    assert refused.key != again.key  # another change is news; a retry of the same one (same revision) is not
    assert payload(ReceiverType.SLACK, refused)["text"].startswith(":snowflake: *FreezeRefused* A change by bob")
