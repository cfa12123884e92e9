"""The callbacks' vocabulary and the one wire format of a callback's body.

    {"id": "evt_…", "type": "message.delivered", "timestamp": "2026-12-02T21:00:00.123456Z",
     "data": {"message_id": "…", "provider": "sendgrid", "recipient": "ann@example.com",
              "tags": [...], "metadata": {...}, "detail": "…"}}

`id` is the event's: the same for every endpoint and every attempt (it is also the webhook-id
header), so a client dedupes on it."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mail.models import MessageEvent

# Our event types that a client hears about, by their callback name. Our other events (waiting,
# skipped, ...) are the service's own bookkeeping.
NAMES = {
    MessageEvent.Type.QUEUED: "message.queued",
    MessageEvent.Type.SENT: "message.sent",
    MessageEvent.Type.RETRY_SCHEDULED: "message.retrying",
    MessageEvent.Type.FAILOVER: "message.failed_over",
    MessageEvent.Type.FAILED: "message.failed",
    MessageEvent.Type.CANCELED: "message.canceled",
    MessageEvent.Type.DELIVERED: "message.delivered",
    MessageEvent.Type.BOUNCED: "message.bounced",
    MessageEvent.Type.COMPLAINED: "message.complained",
    MessageEvent.Type.OPENED: "message.opened",
    MessageEvent.Type.CLICKED: "message.clicked",
    MessageEvent.Type.UNSUBSCRIBED: "message.unsubscribed",
    MessageEvent.Type.DEAD_LETTERED: "message.dead_lettered",
    MessageEvent.Type.DROPPED: "message.dropped",
    # An operator gave up on a dead letter: for the client, its message failed.
    MessageEvent.Type.DISCARDED: "message.failed",
}
EVENT_TYPES = tuple(NAMES.values())
# Sent when an endpoint is created or re-enabled, to see whether it answers; never retried.
TEST_EVENT = "webhook.test"

# Derives stable event ids from our own event rows.
_EVENT_ID_NAMESPACE = uuid.UUID("5b0b3c0e-8f2d-4c1b-9a57-1c1d1e5e0a17")


@dataclass(frozen=True)
class CallbackEvent:
    event_id: str
    type: str
    occurred_at: datetime
    message_id: str | None = None
    provider: str = ""
    recipient: str = ""
    tags: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    detail: str = ""

    @classmethod
    def of(cls, event: MessageEvent, tags: list, metadata: dict) -> CallbackEvent:
        return cls(
            event_id=event_id_for(event),
            type=NAMES[event.type],
            occurred_at=event.occurred_at or event.created_at,
            message_id=str(event.message_id),
            provider=event.provider,
            recipient=event.recipient,
            tags=list(tags),
            metadata=dict(metadata),
            detail=event.detail[:500],
        )

    @classmethod
    def test(cls) -> CallbackEvent:
        return cls(event_id=f"evt_{uuid.uuid4().hex}", type=TEST_EVENT, occurred_at=datetime.now(UTC))

    def to_wire(self) -> dict:
        return {
            "id": self.event_id,
            "type": self.type,
            "timestamp": self.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "data": {
                "message_id": self.message_id,
                "provider": self.provider,
                "recipient": self.recipient,
                "tags": self.tags,
                "metadata": self.metadata,
                "detail": self.detail,
            },
        }


def body_of(wire: dict) -> str:
    """The exact text sent and signed."""
    return json.dumps(wire, separators=(",", ":"), ensure_ascii=False)


def event_id_for(event: MessageEvent) -> str:
    return f"evt_{uuid.uuid5(_EVENT_ID_NAMESPACE, f'{event.message_id}:{event.pk}').hex}"


def wanted(event_types: list, name: str) -> bool:
    return not event_types or name in event_types
