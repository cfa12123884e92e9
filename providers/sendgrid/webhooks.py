"""SendGrid's signed event webhook: ECDSA P-256 / SHA-256 over the timestamp header followed by
the raw body, the signature (base64 DER) and timestamp in X-Twilio-Email-Event-Webhook-*
headers; the verification key is the base64 DER public key SendGrid shows in its settings. The
signature covers the raw bytes, so it is checked before the body is parsed at all."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ..base import MESSAGE_ID_KEY
from ..events import (
    DeliveryEvent,
    EventType,
    WebhookBatch,
    WebhookMalformed,
    WebhookRefused,
    check_age,
    detail,
    fallback_id,
    occurred_at,
    text,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

EVENTS = {
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


@functools.lru_cache(maxsize=4)
def public_key(public_key_b64: str) -> ec.EllipticCurvePublicKey:
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


def verify(body: bytes, signature: str, timestamp: str, public_key_b64: str, max_age_seconds: int, now: float) -> None:
    """Raise WebhookRefused unless SendGrid signed these exact bytes at about this time."""
    if not signature or not timestamp:
        raise WebhookRefused(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} are required")
    check_age(timestamp, max_age_seconds, now)
    try:
        der_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookRefused("the signature is not base64") from exc
    try:
        public_key(public_key_b64).verify(der_signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise WebhookRefused("the signature does not match the body and timestamp") from exc


def parse(body: bytes) -> list[DeliveryEvent]:
    """SendGrid posts a JSON array of events; our custom_args are top-level keys of each one.
    Event kinds outside the vocabulary (group_resubscribe, ...) are left out."""
    try:
        items = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise WebhookMalformed("the body is not JSON") from exc
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise WebhookMalformed("SendGrid posts a JSON array of event objects")
    events = []
    for index, item in enumerate(items):
        name = item.get("event")
        if not isinstance(name, str):
            raise WebhookMalformed(f"event {index} has no 'event' name")
        kind = EVENTS.get(name)
        if kind is None:
            continue
        # A "bounce" of type "blocked" is a refusal for now (reputation, content), not a dead address.
        bounce_type = text(item.get("type")) or "bounce"
        events.append(
            DeliveryEvent(
                provider="sendgrid",
                type=kind,
                message_id=text(item.get(MESSAGE_ID_KEY)),
                event_id=text(item.get("sg_event_id")) or fallback_id(item),
                recipient=text(item.get("email")).lower(),
                occurred_at=occurred_at(item.get("timestamp")),
                permanent=kind is EventType.BOUNCED and bounce_type == "bounce",
                detail=detail(
                    bounce_type if kind is EventType.BOUNCED else "",
                    item.get("status"),
                    item.get("reason") or item.get("response"),
                    item.get("url") if kind is EventType.CLICKED else "",
                ),
            )
        )
    return events


def read(body: bytes, headers: Mapping[str, str], key: str, max_age_seconds: int, now: float) -> WebhookBatch:
    verify(body, headers.get(SIGNATURE_HEADER, ""), headers.get(TIMESTAMP_HEADER, ""), key, max_age_seconds, now)
    return WebhookBatch(events=tuple(parse(body)))
