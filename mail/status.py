"""A message's status after a provider took it, and the events the providers report.

The webhook view verifies and reads a provider's request (providers/<name>/webhooks.py); this
module matches each event to its message, stores it once however often the provider resends it,
moves the status forward only, and suppresses hard-bounced and complaining recipients."""

from __future__ import annotations

import enum
import logging
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from providers.events import DeliveryEvent, WebhookBatch

from .exceptions import Replayed
from .models import MAX_ADDRESS_LENGTH, Message, MessageEvent, WebhookToken
from .suppressions import suppress_if_final

log = logging.getLogger(__name__)

# How far along a sent message is. A provider's event moves the status only further along this
# order: a late "delivered" after a "bounced" (events arrive out of order, and a message has
# several recipients) is recorded as an event and leaves the status as it is. A message not yet
# `sent` (an event faster than our own write) keeps its status until that write, which then
# catches up with the events already recorded.
STATUS_ORDER = [Message.Status.SENT, Message.Status.DELIVERED, Message.Status.BOUNCED, Message.Status.COMPLAINED]
STATUS_FOR_EVENT = {
    MessageEvent.Type.DELIVERED: Message.Status.DELIVERED,
    MessageEvent.Type.BOUNCED: Message.Status.BOUNCED,
    MessageEvent.Type.COMPLAINED: Message.Status.COMPLAINED,
}


class Outcome(enum.Enum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"  # the provider sent this event before
    UNKNOWN_MESSAGE = "unknown_message"  # not one of ours (or long deleted): logged, not retried


def advance_status(message_id, event_type: str) -> bool:
    """One conditional UPDATE, so concurrent webhooks cannot move a status backwards."""
    target = STATUS_FOR_EVENT.get(event_type)
    if target is None:
        return False
    earlier = STATUS_ORDER[: STATUS_ORDER.index(target)]
    return bool(Message.objects.filter(pk=message_id, status__in=earlier).update(status=target, updated_at=timezone.now()))


def catch_up(message_id) -> None:
    """A message just written `sent` takes the status its provider events already reported."""
    for event_type in MessageEvent.objects.filter(message_id=message_id, type__in=STATUS_FOR_EVENT).values_list(
        "type", flat=True
    ):
        advance_status(message_id, event_type)


def record_events(batch: WebhookBatch) -> list[Outcome]:
    """Record a verified webhook's events. A batch with a single-use token raises Replayed when the
    token was used before; the token is stored in the same transaction as the events, so a
    request that failed half-way can be sent again by the provider and is not taken for a replay.
    Without one, each event stands on its own (one SendGrid request covers many messages)."""
    if batch.single_use is None:
        return [_record(event) for event in batch.events]
    signed_at = datetime.fromtimestamp(batch.single_use.signed_at, tz=UTC)
    with transaction.atomic():
        try:
            with transaction.atomic():
                WebhookToken.objects.create(token=batch.single_use.token, signed_at=signed_at)
        except IntegrityError as exc:
            raise Replayed() from exc
        return [_record(event) for event in batch.events]


def _record(event: DeliveryEvent) -> Outcome:
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
                    recipient=event.recipient[:MAX_ADDRESS_LENGTH],
                    occurred_at=event.occurred_at,
                    detail=event.detail,
                )
        except IntegrityError:
            return Outcome.DUPLICATE
        advance_status(message_id, event.type.value)
        suppress_if_final(event, message_id)
    log.info(
        "provider event recorded", extra={"message_id": str(message_id), "provider": event.provider, "event": event.type.value}
    )
    return Outcome.RECORDED


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
