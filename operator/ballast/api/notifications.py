"""Where a ReleasePolicy sends word of its releases and freezes: chat and webhook receivers."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ballast.api.common import ApiModel


class NotificationEvent(StrEnum):
    """What a receiver hears about."""

    AWAITING_APPROVAL = "AwaitingApproval"
    BLOCKED = "Blocked"
    ROLLED_BACK = "RolledBack"
    PROMOTED = "Promoted"
    BREAK_GLASS = "BreakGlass"
    FREEZE_REFUSED = "FreezeRefused"


class ReceiverType(StrEnum):
    """How a message is shaped: a Slack-compatible incoming webhook, or Ballast's own JSON."""

    SLACK = "Slack"
    WEBHOOK = "Webhook"


class SecretKeyRef(ApiModel):
    """A key of a Secret holding the receiver's URL (which carries its credentials, so it is not in the policy)."""

    namespace: str = Field(min_length=1, max_length=63)
    """The Secret's namespace. The chart lets the operator read Secrets in its own namespace only."""
    name: str = Field(min_length=1, max_length=253)
    key: str = Field(default="url", min_length=1, max_length=253)
    """The data key whose value is the URL."""


class NotificationReceiver(ApiModel):
    """One receiver of notifications."""

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """Names the receiver in events and metrics."""
    type: ReceiverType
    """``Slack`` (a Slack-compatible incoming webhook: Slack, Mattermost, Rocket.Chat) or ``Webhook``
    (a POST of Ballast's JSON)."""
    url_secret_ref: SecretKeyRef
    """The Secret key holding the URL to POST to."""
    events: list[NotificationEvent] = Field(default_factory=list, max_length=6)
    """The events to send; empty: all of them."""
