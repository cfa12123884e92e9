"""A message's status after a provider took it, and the events the providers report.

The webhook view verifies and reads a provider's request (providers/<name>/webhooks.py); this
module matches each event to its message, stores it once however often the provider resends it,
moves the status forward only, and suppresses hard-bounced and complaining recipients.

A signature proves who sent the request, not that its content is about this message: Mailgun's
signs only a timestamp and a token. So an event acts (status, suppression) only within its
scope (`scope_of`); outside it, it is recorded for the operator and changes nothing."""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from providers.events import DeliveryEvent, EventType, WebhookBatch

from .callbacks import outbox
from .exceptions import Replayed
from .models import MAX_ADDRESS_LENGTH, Message, MessageEvent, WebhookToken
from .suppressions import suppress_if_final

log = logging.getLogger(__name__)

# How far along a sent message is. A provider's event moves the status only further along this
# order: a late "delivered" after a "bounced" (events arrive out of order, and a message has
# several recipients) is recorded as an event and leaves the status as it is. A message not yet
# `sent` (an event faster than our own write) keeps its status until that write, which then
# catches up with the events already recorded.
# `dropped` comes right after `sent`: the provider gave up before trying, which a client must see;
# a recipient's `delivered` (a message to several, dropped for one) says more and moves past it.
STATUS_ORDER = [
    Message.Status.SENT,
    Message.Status.DROPPED,
    Message.Status.DELIVERED,
    Message.Status.BOUNCED,
    Message.Status.COMPLAINED,
]
STATUS_FOR_EVENT = {
    MessageEvent.Type.DROPPED: Message.Status.DROPPED,
    MessageEvent.Type.DELIVERED: Message.Status.DELIVERED,
    MessageEvent.Type.BOUNCED: Message.Status.BOUNCED,
    MessageEvent.Type.COMPLAINED: Message.Status.COMPLAINED,
}


# Our own events that mean a provider was sent the message (and may have taken it).
HANDED_TO_PROVIDER = (MessageEvent.Type.SENT, MessageEvent.Type.RETRY_SCHEDULED, MessageEvent.Type.FAILOVER)
PROVIDER_EVENT_TYPES = tuple(event_type.value for event_type in EventType)


class Outcome(enum.Enum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"  # the provider sent this event before
    UNKNOWN_MESSAGE = "unknown_message"  # not one of ours (or long deleted): logged, not retried


@dataclass(frozen=True)
class Scope:
    advance: bool  # may move the message's status
    suppress: bool  # may suppress the event's recipient
    why_not: str = ""


def scope_of(
    event: DeliveryEvent,
    status: str,
    provider: str,
    recipients: str,
    attempted: frozenset[str] = frozenset(),
    sandbox: bool = False,
) -> Scope:
    """What a verified event may change about a message with this status, sending provider,
    comma-separated recipients (as Message stores them) and providers it was handed to. A sandbox
    message's bounces and complaints are make-believe: they never suppress anyone.

    Nothing for an address the message was not sent to. The status moves only for a sent message
    and only on its sending provider's word. A recipient is suppressed on the word of any provider
    the message was handed to: one whose answer we missed (a timeout, then a retry or a failover)
    may have delivered it all the same, and its complaint is as real. An event that comes before
    our own `sent` write is applied by catch_up once that write is made."""
    if event.recipient and not sent_to(recipients, event.recipient):
        return Scope(False, False, "the address is not one of the message's recipients")
    sent_by_it = status in STATUS_ORDER and event.provider == provider
    if sent_by_it:
        return Scope(True, not sandbox)
    if event.provider in attempted:
        return Scope(False, not sandbox, f"the message's status follows {provider or 'the provider that sends it'}")
    if status not in STATUS_ORDER:
        return Scope(False, False, "the message has not been sent")
    return Scope(False, False, f"the message was sent by {provider or 'no provider'}")


def sent_to(recipients: str, address: str) -> bool:
    """Whether `address` is among a message's comma-separated recipients (any case)."""
    return address.lower() in {r.strip().lower() for r in recipients.split(",")}


def advance_status(message_id, event_type: str) -> bool:
    """One conditional UPDATE, so concurrent webhooks cannot move a status backwards."""
    target = STATUS_FOR_EVENT.get(event_type)
    if target is None:
        return False
    earlier = STATUS_ORDER[: STATUS_ORDER.index(target)]
    return bool(Message.objects.filter(pk=message_id, status__in=earlier).update(status=target, updated_at=timezone.now()))


def catch_up(message_id) -> None:
    """A message just written `sent` takes what its provider's events already reported: the status
    and the suppressions they would have made had they come after the write."""
    message = Message.objects.only("status", "provider", "recipients", "team_id", "sandbox").get(pk=message_id)
    for row in MessageEvent.objects.filter(message_id=message_id, provider=message.provider, type__in=PROVIDER_EVENT_TYPES):
        delivery_event = DeliveryEvent(
            provider=row.provider,
            type=EventType(row.type),
            message_id=str(message_id),
            event_id=row.provider_event_id,
            recipient=row.recipient,
            occurred_at=row.occurred_at,
            permanent=row.permanent,
            detail=row.detail,
        )
        scope = scope_of(delivery_event, message.status, message.provider, message.recipients, sandbox=message.sandbox)
        if scope.advance:
            advance_status(message_id, row.type)
        if scope.suppress:
            suppress_if_final(delivery_event, message_id, message.team_id)


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
        # Locked: a worker writing `sent` at this moment runs catch_up in its own transaction, which
        # cannot see this event before it commits; waiting for that write means one of the two
        # always sees the other.
        message = (
            Message.objects.select_for_update()
            .filter(pk=message_id)
            .only("status", "provider", "recipients", "team_id", "sandbox")
            .first()
            if message_id
            else None
        )
        if message is None:
            log.warning(
                "provider event for an unknown message; ignored",
                extra={"provider": event.provider, "event": event.type.value, "message_id": event.message_id[:64]},
            )
            return Outcome.UNKNOWN_MESSAGE
        # An address the message was not sent to is not stored: a forged event could plant any,
        # and a late event for a message whose recipient was erased (mail/erasure.py) must not
        # bring the address back. The provider's words may quote it, so they go too.
        known = not event.recipient or sent_to(message.recipients, event.recipient)
        try:
            with transaction.atomic():
                recorded = MessageEvent.objects.create(
                    message_id=message_id,
                    type=event.type.value,
                    provider=event.provider,
                    provider_event_id=event.event_id[:255],
                    recipient=event.recipient[:MAX_ADDRESS_LENGTH] if known else "",
                    occurred_at=event.occurred_at,
                    permanent=event.permanent,
                    detail=event.detail if known else "(about an address the message was not sent to)",
                )
        except IntegrityError:
            return Outcome.DUPLICATE
        outbox.record([recorded])
        attempted = frozenset(
            MessageEvent.objects.filter(message_id=message_id, type__in=HANDED_TO_PROVIDER).values_list("provider", flat=True)
        )
        scope = scope_of(event, message.status, message.provider, message.recipients, attempted, message.sandbox)
        if scope.advance:
            advance_status(message_id, event.type.value)
        if scope.suppress:
            suppress_if_final(event, message_id, message.team_id)
    extra = {"message_id": str(message_id), "provider": event.provider, "event": event.type.value}
    if scope.why_not and not scope.suppress and message.status in STATUS_ORDER:
        # Before the sent write this is the usual race, caught up later; after it, worth a look.
        log.warning("provider event recorded without effect: %s", scope.why_not, extra=extra)
    else:
        log.info("provider event recorded", extra=extra)
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
