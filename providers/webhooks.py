"""Delivery events from the providers' webhooks: signature checks and one vocabulary.

Each provider signs its webhooks differently; both are checked here before anything in the
event is believed, and each provider's event names are mapped to EventType in this one module,
so the rest of the service knows a single vocabulary.

- SendGrid's signed event webhook: ECDSA P-256 / SHA-256 over the timestamp header followed by
  the raw body, the signature (base64 DER) and timestamp in X-Twilio-Email-Event-Webhook-*
  headers; the verification key is the base64 DER public key SendGrid shows in its settings.
  The signature covers the raw bytes, so it is checked before the body is parsed at all.
- Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key. The signature travels
  inside the JSON body, so the body is parsed as JSON to read it; nothing of `event-data` is
  read until the signature has been verified. The token is the caller's to remember (replays).
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from .base import MESSAGE_ID_KEY

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_DETAIL_CHARS = 1000


class EventType(str, enum.Enum):
    """What happened to a message after a provider accepted it, whoever reports it."""

    PROCESSED = "processed"  # the provider took it in (SendGrid processed, Mailgun accepted)
    DELIVERED = "delivered"  # the recipient's server accepted it
    DEFERRED = "deferred"  # a temporary failure; the provider keeps trying
    BOUNCED = "bounced"  # the recipient's server refused it; the provider has given up
    DROPPED = "dropped"  # the provider did not even try (its own suppression lists, ...)
    COMPLAINED = "complained"  # the recipient marked it as spam
    UNSUBSCRIBED = "unsubscribed"
    OPENED = "opened"
    CLICKED = "clicked"


@dataclass(frozen=True)
class DeliveryEvent:
    provider: str
    type: EventType
    message_id: str  # ours, echoed from custom_args / v: variables; "" when the event has none
    event_id: str  # the provider's id of this event: the same on every resend of it
    recipient: str
    occurred_at: datetime | None
    # A hard bounce: the address does not exist or refuses mail for good (not a full mailbox,
    # a block or a provider giving up on a slow server).
    permanent: bool = False
    detail: str = ""


class WebhookRefused(Exception):
    """Not signed by the provider, signed with another key, or too old: nothing in it is believed."""


class WebhookMalformed(Exception):
    """Signed (or unsignable) but not the shape the provider sends."""


def _check_age(timestamp: str, max_age_seconds: int, now: float) -> int:
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise WebhookRefused("the timestamp is not a Unix time")
    signed_at = int(timestamp)
    if abs(now - signed_at) > max_age_seconds:
        raise WebhookRefused(f"the timestamp is more than {max_age_seconds} s away from now")
    return signed_at


def _occurred_at(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise WebhookMalformed(f"the event's timestamp {value!r} is not a Unix time")
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise WebhookMalformed(f"the event's timestamp {value!r} is out of range")


def _storable(text: str) -> str:
    # JSON may carry NUL and unpaired surrogates, which the database cannot store.
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _text(value: Any) -> str:
    return _storable(value) if isinstance(value, str) else ""


def _detail(*parts: Any) -> str:
    return _storable(" ".join(str(part) for part in parts if part not in (None, ""))[:MAX_DETAIL_CHARS])


def _fallback_id(event: Mapping) -> str:
    # An event without the provider's id is recognised by its content when it is sent again.
    return "sha256:" + hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()


# --- SendGrid ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def sendgrid_public_key(public_key_b64: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 of the DER SubjectPublicKeyInfo; PEM
    armour is tolerated). Raises ValueError when it is not a P-256 public key."""
    body = "".join(line for line in public_key_b64.strip().splitlines() if not line.startswith("-----"))
    try:
        key = load_der_public_key(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not a base64 DER public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("SendGrid signs with ECDSA P-256; this is another kind of key")
    return key


def verify_sendgrid(body: bytes, signature: str, timestamp: str, public_key_b64: str, max_age_seconds: int, now: float) -> None:
    """Raise WebhookRefused unless SendGrid signed these exact bytes at about this time."""
    if not signature or not timestamp:
        raise WebhookRefused(f"{SENDGRID_SIGNATURE_HEADER} and {SENDGRID_TIMESTAMP_HEADER} are required")
    _check_age(timestamp, max_age_seconds, now)
    try:
        der_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookRefused("the signature is not base64")
    try:
        sendgrid_public_key(public_key_b64).verify(der_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise WebhookRefused("the signature does not match the body and timestamp")


SENDGRID_EVENTS = {
    "processed": EventType.PROCESSED,
    "delivered": EventType.DELIVERED,
    "deferred": EventType.DEFERRED,
    "bounce": EventType.BOUNCED,
    "dropped": EventType.DROPPED,
    "spamreport": EventType.COMPLAINED,
    "unsubscribe": EventType.UNSUBSCRIBED,
    "group_unsubscribe": EventType.UNSUBSCRIBED,
    "open": EventType.OPENED,
    "click": EventType.CLICKED,
}


def parse_sendgrid(body: bytes) -> list[DeliveryEvent]:
    """SendGrid posts a JSON array of events; our custom_args are top-level keys of each one.
    Event kinds outside the vocabulary (group_resubscribe, ...) are left out."""
    try:
        items = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WebhookMalformed("the body is not JSON")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise WebhookMalformed("SendGrid posts a JSON array of event objects")
    events = []
    for index, item in enumerate(items):
        name = item.get("event")
        if not isinstance(name, str):
            raise WebhookMalformed(f"event {index} has no 'event' name")
        kind = SENDGRID_EVENTS.get(name)
        if kind is None:
            continue
        # A "bounce" of type "blocked" is a refusal for now (reputation, content), not a dead address.
        bounce_type = _text(item.get("type")) or "bounce"
        events.append(
            DeliveryEvent(
                provider="sendgrid",
                type=kind,
                message_id=_text(item.get(MESSAGE_ID_KEY)),
                event_id=_text(item.get("sg_event_id")) or _fallback_id(item),
                recipient=_text(item.get("email")).lower(),
                occurred_at=_occurred_at(item.get("timestamp")),
                permanent=kind is EventType.BOUNCED and bounce_type == "bounce",
                detail=_detail(
                    bounce_type if kind is EventType.BOUNCED else "",
                    item.get("status"),
                    item.get("reason") or item.get("response"),
                    item.get("url") if kind is EventType.CLICKED else "",
                ),
            )
        )
    return events


# --- Mailgun -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MailgunWebhook:
    token: str  # to be remembered while the timestamp is fresh: a second use is a replay
    signed_at: int
    event_data: Mapping


def verify_mailgun(body: bytes, signing_key: str, max_age_seconds: int, now: float) -> MailgunWebhook:
    """Mailgun's JSON webhook, once its signature is verified. WebhookMalformed when the body is
    not a JSON object, WebhookRefused when the signature is missing, wrong or stale."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WebhookMalformed("the body is not JSON (Mailgun's webhooks post JSON)")
    if not isinstance(document, dict):
        raise WebhookMalformed("Mailgun posts a JSON object with 'signature' and 'event-data'")
    signature = document.get("signature")
    if not isinstance(signature, dict) or not all(isinstance(signature.get(k), str) for k in ("timestamp", "token", "signature")):
        raise WebhookRefused("no signature (timestamp, token, signature)")
    timestamp, token = signature["timestamp"], signature["token"]
    if not (token.isascii() and signature["signature"].isascii()):
        raise WebhookRefused("the token and signature are ASCII")
    signed_at = _check_age(timestamp, max_age_seconds, now)
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature["signature"].encode()):
        raise WebhookRefused("the signature does not match")
    if not token or len(token) > 255:
        raise WebhookRefused("the token is missing or too long")
    return MailgunWebhook(token=token, signed_at=signed_at, event_data=document.get("event-data"))


MAILGUN_EVENTS = {
    "accepted": EventType.PROCESSED,
    "delivered": EventType.DELIVERED,
    "rejected": EventType.DROPPED,
    "complained": EventType.COMPLAINED,
    "unsubscribed": EventType.UNSUBSCRIBED,
    "opened": EventType.OPENED,
    "clicked": EventType.CLICKED,
}
# Permanent failures that say nothing about the address itself: not hard bounces.
MAILGUN_SOFT_PERMANENT_REASONS = frozenset({"espblock", "old", "greylisted", "blacklisted"})


def parse_mailgun(event_data: Any) -> DeliveryEvent | None:
    """The event of a verified Mailgun webhook in our vocabulary; None for kinds outside it."""
    if not isinstance(event_data, dict) or not isinstance(event_data.get("event"), str):
        raise WebhookMalformed("'event-data' must be an object with an 'event' name")
    name = event_data["event"]
    reason = _text(event_data.get("reason"))
    permanent = False
    if name == "failed":
        severity = event_data.get("severity")
        if severity == "temporary":
            kind = EventType.DEFERRED
        elif severity == "permanent":
            # suppress-bounce/-complaint/-unsubscribe: on Mailgun's own lists, never attempted.
            kind = EventType.DROPPED if reason.startswith("suppress-") else EventType.BOUNCED
            permanent = kind is EventType.BOUNCED and reason not in MAILGUN_SOFT_PERMANENT_REASONS
        else:
            raise WebhookMalformed("a 'failed' event needs a severity of 'temporary' or 'permanent'")
    else:
        kind = MAILGUN_EVENTS.get(name)
        if kind is None:
            return None
    variables = event_data.get("user-variables")
    status = event_data.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    return DeliveryEvent(
        provider="mailgun",
        type=kind,
        message_id=_text(variables.get(MESSAGE_ID_KEY)) if isinstance(variables, dict) else "",
        event_id=_text(event_data.get("id")) or _fallback_id(event_data),
        recipient=_text(event_data.get("recipient")).lower(),
        occurred_at=_occurred_at(event_data.get("timestamp")),
        permanent=permanent,
        detail=_detail(
            reason,
            status.get("code"),
            status.get("description") or status.get("message"),
            event_data.get("url") if kind is EventType.CLICKED else "",
        ),
    )
