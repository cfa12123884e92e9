"""Mailgun's webhooks: HMAC-SHA256 of timestamp + token with the webhook signing key. The
signature travels inside the JSON body, so the body is parsed as JSON to read it; nothing of
`event-data` is read until the signature has been verified. The signature covers the timestamp
and token only, so each token is accepted once (WebhookBatch.single_use)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from ..base import MESSAGE_ID_KEY
from ..events import (
    DeliveryEvent,
    EventType,
    SingleUseToken,
    WebhookBatch,
    WebhookMalformed,
    WebhookRefused,
    check_age,
    detail,
    fallback_id,
    occurred_at,
    text,
)

EVENTS = {
    "accepted": EventType.PROCESSED,
    "delivered": EventType.DELIVERED,
    "rejected": EventType.DROPPED,
    "complained": EventType.COMPLAINED,
    "unsubscribed": EventType.UNSUBSCRIBED,
    "opened": EventType.OPENED,
    "clicked": EventType.CLICKED,
}
# Permanent failures that say nothing about the address itself: not hard bounces.
SOFT_PERMANENT_REASONS = frozenset({"espblock", "old", "greylisted", "blacklisted"})


def verify(body: bytes, signing_key: str, max_age_seconds: int, now: float) -> tuple[SingleUseToken, Any]:
    """The signature's token and the unread `event-data`, once the signature is verified.
    WebhookMalformed when the body is not a JSON object, WebhookRefused when the signature is
    missing, wrong or stale."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WebhookMalformed("the body is not JSON (Mailgun's webhooks post JSON)") from exc
    if not isinstance(document, dict):
        raise WebhookMalformed("Mailgun posts a JSON object with 'signature' and 'event-data'")
    signature = document.get("signature")
    if not isinstance(signature, dict) or not all(isinstance(signature.get(k), str) for k in ("timestamp", "token", "signature")):
        raise WebhookRefused("no signature (timestamp, token, signature)")
    timestamp, token = signature["timestamp"], signature["token"]
    if not (token.isascii() and signature["signature"].isascii()):
        raise WebhookRefused("the token and signature are ASCII")
    signed_at = check_age(timestamp, max_age_seconds, now)
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature["signature"].encode()):
        raise WebhookRefused("the signature does not match")
    if not token or len(token) > 255:
        raise WebhookRefused("the token is missing or too long")
    return SingleUseToken(token=token, signed_at=signed_at), document.get("event-data")


def parse(event_data: Any) -> DeliveryEvent | None:
    """The event of a verified webhook in our vocabulary; None for kinds outside it."""
    if not isinstance(event_data, dict) or not isinstance(event_data.get("event"), str):
        raise WebhookMalformed("'event-data' must be an object with an 'event' name")
    name = event_data["event"]
    reason = text(event_data.get("reason"))
    permanent = False
    if name == "failed":
        severity = event_data.get("severity")
        if severity == "temporary":
            kind = EventType.DEFERRED
        elif severity == "permanent":
            # suppress-bounce/-complaint/-unsubscribe: on Mailgun's own lists, never attempted.
            kind = EventType.DROPPED if reason.startswith("suppress-") else EventType.BOUNCED
            permanent = kind is EventType.BOUNCED and reason not in SOFT_PERMANENT_REASONS
        else:
            raise WebhookMalformed("a 'failed' event needs a severity of 'temporary' or 'permanent'")
    else:
        kind = EVENTS.get(name)
        if kind is None:
            return None
    variables = event_data.get("user-variables")
    status = event_data.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    return DeliveryEvent(
        provider="mailgun",
        type=kind,
        message_id=text(variables.get(MESSAGE_ID_KEY)) if isinstance(variables, dict) else "",
        event_id=text(event_data.get("id")) or fallback_id(event_data),
        recipient=text(event_data.get("recipient")).lower(),
        occurred_at=occurred_at(event_data.get("timestamp")),
        permanent=permanent,
        detail=detail(
            reason,
            status.get("code"),
            status.get("description") or status.get("message"),
            event_data.get("url") if kind is EventType.CLICKED else "",
        ),
    )


def read(body: bytes, headers: Mapping[str, str], key: str, max_age_seconds: int, now: float) -> WebhookBatch:
    token, event_data = verify(body, key, max_age_seconds, now)
    event = parse(event_data)
    return WebhookBatch(events=(event,) if event is not None else (), single_use=token)
