"""The use case behind the providers' webhooks: record what happened to a message after a
provider accepted it. The webhook views verify and parse (providers.webhooks); this module
matches each event to its message, stores it once however often the provider resends it, moves
the status forward only (services.advance_status), and suppresses hard-bounced and complaining
recipients."""

from __future__ import annotations

import enum
import logging
import uuid
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from providers.webhooks import DeliveryEvent, MailgunWebhook

from . import services
from .models import Message, MessageEvent, WebhookToken

log = logging.getLogger(__name__)

class Replayed(Exception):
    """A Mailgun token seen before: the same signed request sent again."""


class Outcome(enum.Enum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"  # the provider sent this event before
    UNKNOWN_MESSAGE = "unknown_message"  # not one of ours (or long deleted): logged, not retried


def record_event(event: DeliveryEvent) -> Outcome:
    message_id = _our_id(event.message_id)
    with transaction.atomic():
        if message_id is None or not Message.objects.filter(pk=message_id).exists():
            log.warning(
                "provider event for an unknown message; ignored",
                extra={"provider": event.provider, "event": event.type.value, "message_id": event.message_id[:64]},
            )
            return Outcome.UNKNOWN_MESSAGE
        try:
            with transaction.atomic():
                MessageEvent.objects.create(
                    message_id=message_id,
                    type=event.type.value,
                    provider=event.provider,
                    provider_event_id=event.event_id[:255],
                    recipient=event.recipient[:320],
                    occurred_at=event.occurred_at,
                    detail=event.detail,
                )
        except IntegrityError:
            return Outcome.DUPLICATE
        services.advance_status(message_id, event.type.value)
        services.suppress_if_final(event, message_id)
    log.info("provider event recorded", extra={"message_id": str(message_id), "provider": event.provider, "event": event.type.value})
    return Outcome.RECORDED


def record_sendgrid_events(events: list[DeliveryEvent]) -> list[Outcome]:
    # Each event on its own: one SendGrid batch covers many messages.
    return [record_event(event) for event in events]


def record_mailgun_webhook(webhook: MailgunWebhook, event: DeliveryEvent | None) -> Outcome | None:
    """Record a verified Mailgun webhook. Raises Replayed when its token was used before. The
    token is stored in the same transaction as the event, so a request that failed half-way can
    be sent again by Mailgun and is not mistaken for a replay."""
    signed_at = datetime.fromtimestamp(webhook.signed_at, tz=dt_timezone.utc)
    with transaction.atomic():
        try:
            with transaction.atomic():
                WebhookToken.objects.create(token=webhook.token, signed_at=signed_at)
        except IntegrityError:
            raise Replayed()
        return record_event(event) if event is not None else None


def forget_old_webhook_tokens() -> int:
    """Delete the tokens whose timestamps are too old to pass the age check again."""
    horizon = timezone.now() - timedelta(seconds=settings.WEBHOOK_MAX_AGE_SECONDS * 2)
    deleted, _ = WebhookToken.objects.filter(signed_at__lt=horizon).delete()
    return deleted


def _our_id(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
