"""No row left behind: the messages whose task is gone while their row still says `queued` or
`sending`, found by the housekeeping command and settled by one rule.

A message is *stale* when its row has not changed for STALE_MESSAGE_SECONDS: longer than any
live task can leave it untouched (the longest SQS delay, every receive's visibility timeout, the
lease). For a stale message, in this order:

1. a provider's event for it (processed, delivered, ...) proves a provider took it: `sent`, with
   a `sent` event that says the sweeper found it so;
2. its task is in the dead-letter queue (a pending dead letter the drainer recorded): `failed`,
   with a `failed` event that says so; the admin's *requeue* sends it again from the dead letter;
3. the delivery queue holds no task at all (visible, in flight or delayed: so none of this
   message's): its task was lost, and the mail travelled only in it: `failed`, with an event;
4. otherwise its task may still be waiting (workers stopped or far behind): left alone, and
   logged with outcome "stale" for the operator.

Each write is conditional on the row being as it was read, so a worker that takes the message
meanwhile wins."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import queues
from .callbacks import outbox
from .models import DeadLetter, Message, MessageEvent
from .status import PROVIDER_EVENT_TYPES, catch_up

log = logging.getLogger(__name__)

BATCH = 200
UNSETTLED = (Message.Status.QUEUED, Message.Status.SENDING)


def sweep() -> int:
    """Settle the stale messages (at most BATCH a run); returns how many changed."""
    horizon = timezone.now() - timedelta(seconds=settings.STALE_MESSAGE_SECONDS)
    stale = list(
        Message.objects.filter(status__in=UNSETTLED, updated_at__lt=horizon)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=horizon))
        .only("status", "updated_at", "step")[:BATCH]
    )
    if not stale:
        return 0
    queue_empty = _queue_holds_nothing()
    settled = 0
    for message in stale:
        settled += _settle(message, queue_empty)
    return settled


def _queue_holds_nothing() -> bool:
    depth = queues.depths().get(settings.SQS_QUEUE_NAME)
    return depth is not None and not any(depth.values())


def _settle(message: Message, queue_empty: bool) -> bool:
    reported = MessageEvent.objects.filter(message_id=message.pk, type__in=PROVIDER_EVENT_TYPES).order_by("created_at").first()
    if reported is not None:
        detail = f"swept: its row said {message.status}, but {reported.provider} reported a `{reported.type}` event for it"
        return _write(message, Message.Status.SENT, MessageEvent.Type.SENT, detail, provider=reported.provider)
    if DeadLetter.objects.filter(message_id=message.pk, status=DeadLetter.Status.PENDING).exists():
        detail = f"swept: its row said {message.status}, but its task is in the dead-letter queue; requeue it from the admin"
        return _write(message, Message.Status.FAILED, MessageEvent.Type.FAILED, detail)
    if queue_empty:
        detail = f"swept: its row said {message.status} and no task of it is left in the queue: its task was lost"
        return _write(message, Message.Status.FAILED, MessageEvent.Type.FAILED, detail)
    log.warning(
        "a message has not moved for longer than any task takes; its task may still be queued",
        extra={"message_id": str(message.pk), "status": message.status, "outcome": "stale"},
    )
    return False


def _write(message: Message, status: str, event_type: str, detail: str, provider: str = "") -> bool:
    now = timezone.now()
    fields = {"status": status, "lease_expires_at": None, "ambiguous_since": None, "updated_at": now}
    if status == Message.Status.SENT:
        fields.update(provider=provider, sent_at=now)
    else:
        fields["last_error"] = detail
    with transaction.atomic():
        changed = Message.objects.filter(pk=message.pk, status=message.status, updated_at=message.updated_at).update(**fields)
        if changed:
            event = MessageEvent.objects.create(message_id=message.pk, type=event_type, provider=provider, detail=detail)
            outbox.record([event])  # the client hears of it as of any other send or failure
            if status == Message.Status.SENT:
                catch_up(message.pk)  # the provider's events already recorded: status, suppressions
    if changed:
        log.warning(detail, extra={"message_id": str(message.pk), "outcome": "swept", "status": status})
    return bool(changed)
