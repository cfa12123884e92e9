"""SES's events, as SES publishes them to an SNS topic (a configuration set's event destination)
and SNS posts them to /webhooks/ses: the SNS message is verified first (sns.py), then its
Message, SES's event as JSON, is read into our vocabulary. Our id comes back as the
`mailer_message_id` tag SES echoes in every event (mail.tags)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..base import MESSAGE_ID_KEY
from ..events import DeliveryEvent, EventType, WebhookBatch, WebhookMalformed, detail, fallback_id, text
from . import sns

NAME = "ses"
# SES's event types (eventType; notificationType in an identity's own notifications).
EVENTS = {
    "Send": EventType.PROCESSED,
    "Delivery": EventType.DELIVERED,
    "DeliveryDelay": EventType.DEFERRED,
    "Bounce": EventType.BOUNCED,
    "Complaint": EventType.COMPLAINED,
    # SES found a virus and did not try: like a provider's own drop.
    "Reject": EventType.DROPPED,
    "Open": EventType.OPENED,
    "Click": EventType.CLICKED,
}
# Permanent bounces whose subtype says SES did not try: the address is on SES's suppression list
# (its own or the account's). Dropped, as Mailgun's suppress-* failures, not a new hard bounce.
NOT_ATTEMPTED_SUBTYPES = frozenset({"Suppressed", "OnAccountSuppressionList"})


def parse(message: Any) -> list[DeliveryEvent]:
    """The events of one SES event record (one per recipient it names); [] for kinds outside
    the vocabulary (Rendering Failure, Subscription)."""
    try:
        record = json.loads(message) if isinstance(message, str) else None
    except (ValueError, RecursionError) as exc:
        raise WebhookMalformed("the SNS Message is not SES's JSON event") from exc
    if not isinstance(record, dict) or not isinstance(record.get("mail"), dict):
        raise WebhookMalformed("an SES event is an object with 'eventType' and 'mail'")
    name = record.get("eventType") or record.get("notificationType")
    kind = EVENTS.get(name) if isinstance(name, str) else None
    if kind is None:
        return []
    mail = record["mail"]
    tags = mail.get("tags")
    ours = tags.get(MESSAGE_ID_KEY) if isinstance(tags, dict) else None
    message_id = text(ours[0]) if isinstance(ours, list) and ours else ""
    section = record.get(name[0].lower() + name[1:])
    section = section if isinstance(section, dict) else {}
    permanent, details = False, []
    if kind is EventType.BOUNCED:
        bounce_type, subtype = text(section.get("bounceType")), text(section.get("bounceSubType"))
        if bounce_type == "Permanent" and subtype in NOT_ATTEMPTED_SUBTYPES:
            kind = EventType.DROPPED
        permanent = kind is EventType.BOUNCED and bounce_type == "Permanent"
        details = [bounce_type, subtype]
    elif kind is EventType.COMPLAINED:
        details = [section.get("complaintFeedbackType")]
    elif kind is EventType.DROPPED:
        details = [section.get("reason")]
    elif kind is EventType.DELIVERED:
        details = [section.get("smtpResponse")]
    elif kind is EventType.DEFERRED:
        details = [section.get("delayType")]
    elif kind is EventType.CLICKED:
        details = [section.get("link")]
    when = _time(section.get("timestamp") or mail.get("timestamp"))
    events = []
    for recipient, said in _recipients(kind, section, mail):
        identity = {"type": name, "ses": mail.get("messageId"), "to": recipient, "at": section.get("timestamp")}
        events.append(
            DeliveryEvent(
                provider=NAME,
                type=kind,
                message_id=message_id,
                # The same on every resend of this event, whichever SNS message carries it.
                event_id=fallback_id(identity),
                recipient=recipient,
                occurred_at=when,
                permanent=permanent,
                detail=detail(*details, *said),
            )
        )
    return events


def _recipients(kind: EventType, section: dict, mail: dict) -> list[tuple[str, list]]:
    """Each recipient the event is about, with what SES said about that one."""
    listed = {
        EventType.BOUNCED: "bouncedRecipients",
        EventType.DROPPED: "bouncedRecipients",
        EventType.COMPLAINED: "complainedRecipients",
        EventType.DEFERRED: "delayedRecipients",
    }.get(kind)
    if listed and isinstance(section.get(listed), list):
        found = [r for r in section[listed] if isinstance(r, dict)]
        return [(text(r.get("emailAddress")).lower(), [r.get("status"), r.get("diagnosticCode")]) for r in found]
    if kind is EventType.DELIVERED and isinstance(section.get("recipients"), list):
        return [(text(r).lower(), []) for r in section["recipients"]]
    # Send, Reject, Open and Click are about the message: its one recipient, if it had one.
    destination = mail.get("destination")
    only = destination[0] if isinstance(destination, list) and len(destination) == 1 else ""
    return [(text(only).lower(), [])]


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WebhookMalformed(f"the event's timestamp {value[:40]!r} is not an ISO 8601 time") from exc
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read(body: bytes, headers: Mapping[str, str], trust: sns.SnsTrust, max_age_seconds: int, now: float) -> WebhookBatch:
    document, token = sns.verify(body, headers, trust, max_age_seconds, now)
    if document["Type"] == sns.SUBSCRIPTION_CONFIRMATION:
        sns.confirm_subscription(document, trust)
        return WebhookBatch(events=(), single_use=token)
    if document["Type"] == sns.UNSUBSCRIBE_CONFIRMATION:
        return WebhookBatch(events=(), single_use=token)
    return WebhookBatch(events=tuple(parse(document["Message"])), single_use=token)
