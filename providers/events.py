"""Delivery events in one vocabulary, whichever provider reports them, and what every webhook
reader shares: its errors, the age check of a signature, and the tidying of event fields.

Each provider folder verifies and reads its own webhooks (providers/<name>/webhooks.py) and maps
its event names to EventType there; nothing outside those modules knows a provider's names."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
    message_id: str  # ours, echoed from the provider's custom variables; "" when the event has none
    event_id: str  # the provider's id of this event: the same on every resend of it
    recipient: str
    occurred_at: datetime | None
    # A hard bounce: the address does not exist or refuses mail for good (not a full mailbox,
    # a block or a provider giving up on a slow server).
    permanent: bool = False
    detail: str = ""


@dataclass(frozen=True)
class SingleUseToken:
    """A signature that stays valid while its timestamp is fresh and must be accepted once: the
    caller remembers it, and a second request with it is a replay."""

    token: str
    signed_at: int  # Unix time


@dataclass(frozen=True)
class WebhookBatch:
    """What one verified webhook request reported."""

    events: tuple[DeliveryEvent, ...]
    single_use: SingleUseToken | None = None


class WebhookRefused(Exception):
    """Not signed by the provider, signed with another key, or too old: nothing in it is believed."""


class WebhookMalformed(Exception):
    """Signed (or unsignable) but not the shape the provider sends."""


def check_age(timestamp: str, max_age_seconds: int, now: float) -> int:
    """The signed Unix time, if it is within max_age_seconds of now; WebhookRefused otherwise."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise WebhookRefused("the timestamp is not a Unix time")
    signed_at = int(timestamp)
    if abs(now - signed_at) > max_age_seconds:
        raise WebhookRefused(f"the timestamp is more than {max_age_seconds} s away from now")
    return signed_at


def occurred_at(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise WebhookMalformed(f"the event's timestamp {value!r} is not a Unix time")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise WebhookMalformed(f"the event's timestamp {value!r} is out of range") from exc


def _storable(text: str) -> str:
    # JSON may carry NUL and unpaired surrogates, which the database cannot store.
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def text(value: Any) -> str:
    """A string field of an event as it can be stored; "" for anything that is not a string."""
    return _storable(value) if isinstance(value, str) else ""


def detail(*parts: Any) -> str:
    """The non-empty parts, joined and cut to a length an operator reads."""
    return _storable(" ".join(str(part) for part in parts if part not in (None, ""))[:MAX_DETAIL_CHARS])


def fallback_id(event: Mapping) -> str:
    """An id for an event the provider sent without one, so that a resend is still recognised."""
    return "sha256:" + hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()
