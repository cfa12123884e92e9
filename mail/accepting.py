"""Accepting mail: one message or a batch, a client's cancel, and the release of messages held for
a later send_at. A message is accepted only once SQS has its task (202 means durably queued).

The rows are committed before the tasks are published, so a worker always finds its row. If the
publish fails, the message is withdrawn and the client hears 503 — unless a worker has already
claimed it, which proves SQS took the task after all (its answer was lost)."""

from __future__ import annotations

import logging
import math
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from providers.base import OutboundMessage

from . import accept_flush, claim_check
from .callbacks import outbox
from .coalescing import Coalescer
from .connections import let_go_of_connection
from .delivery_task import DeliveryTask
from .exceptions import MessageRefused, NotCancelable, QueueUnavailable, TooLargeForQueue
from .models import Message, MessageEvent
from .runtime import RUNTIME

log = logging.getLogger(__name__)


def accept_one(api_key, fields: dict) -> Message:
    """Record the message and queue its delivery. A send_at within SQS's 15-minute delay is an SQS
    delay; further ahead the message is held in the database (status scheduled) until
    release_scheduled queues it. Raises a MessageRefused or QueueUnavailable."""
    (outcome,) = _accept(api_key, [fields], in_batch=False)
    if isinstance(outcome, QueueUnavailable):
        raise outcome
    return outcome


def accept_batch(api_key, fields_list: list[dict]) -> list[Message | QueueUnavailable]:
    """Accept several messages at once: one transaction for their rows, one SQS SendMessageBatch
    per 10 tasks. Each comes back as its Message (accepted) or as the QueueUnavailable that
    withdrew it, in order: SQS can take part of a batch, and what it took stays accepted. A
    MessageRefused (naming the message's position) refuses the whole batch before anything is kept."""
    return _accept(api_key, fields_list, in_batch=True)


def _accept(api_key, fields_list: list[dict], in_batch: bool) -> list[Message | QueueUnavailable]:
    acceptances = []
    try:
        for position, fields in enumerate(fields_list):
            try:
                acceptances.append(_prepare(api_key, fields))
            except MessageRefused as refusal:
                raise (refusal.at(position) if in_batch else refusal) from None
    except BaseException:
        accept_flush.discard_bodies(acceptances)  # nothing was accepted: the bodies already stored for it go too
        raise
    # Checked, written and published together with what concurrent requests of this process
    # accept (mail/accept_flush.py); raises the request's refusal, and then nothing of it was kept.
    # Waiting holds no connection: the flush's leader may need one from the pool.
    let_go_of_connection()
    failures = RUNTIME.coalescer("accepts", _accepts_coalescer).submit(accept_flush.Request(acceptances, in_batch))

    outcomes: list[Message | QueueUnavailable] = []
    for acceptance in acceptances:
        message = acceptance.message
        error = failures.get(str(message.id))
        if error is not None and _withdraw(message.id, error):
            if claim_check.is_pointer(acceptance.task.payload):
                claim_check.discard(str(message.id))
            outcomes.append(QueueUnavailable(str(error)))
            continue
        log.info(
            "message scheduled" if acceptance.held else "message accepted",
            extra={
                "message_id": str(message.id),
                "api_key_prefix": api_key.prefix,
                "recipients": message.recipient_count,
                "queue_bytes": acceptance.queue_bytes,
                "outcome": "scheduled" if acceptance.held else "accepted",
                **({"send_at": message.send_at.isoformat()} if message.send_at else {}),
            },
        )
        outcomes.append(message)
    return outcomes


def _accepts_coalescer() -> Coalescer:
    return Coalescer(
        accept_flush.flush,
        max_weight=settings.ACCEPT_COALESCE_MAX_MESSAGES,
        window_seconds=settings.ACCEPT_COALESCE_WINDOW_SECONDS,
        weigh=len,
        # A request gone before any flush took it (killed while it waited): nothing of it was
        # written, so its bodies stored in S3 go too.
        dropped=lambda request: accept_flush.discard_bodies(request.acceptances),
    )


def _prepare(api_key, fields: dict) -> accept_flush.Acceptance:
    fields = dict(fields)
    send_at = fields.pop("send_at", None)
    ignore_suppressions = fields.pop("ignore_suppressions", False)
    template_alias, template_version = fields.pop("template", None) or ("", None)
    message_id = uuid.uuid4()
    outbound = OutboundMessage(message_id=str(message_id), **fields)
    team_id = api_key.profile.team_id  # read with the key (mail/api/auth.py): no query
    sandbox = api_key.profile.sandbox
    delay = _seconds_until(send_at)
    held = delay > settings.SQS_MAX_DELAY_SECONDS
    task = DeliveryTask(str(message_id), outbound.to_payload(), delay_seconds=0 if held else delay)
    size = task.wire_size()
    if size > settings.LARGE_MESSAGE_BYTES and claim_check.enabled():
        # Too big to travel comfortably in SQS: the body waits in S3, the task carries a pointer.
        task = DeliveryTask(task.message_id, claim_check.store(task.message_id, task.payload), delay_seconds=task.delay_seconds)
        size = task.wire_size()
    if size > settings.SQS_MAX_MESSAGE_BYTES:
        raise TooLargeForQueue(size, settings.SQS_MAX_MESSAGE_BYTES)
    recipients = outbound.to + outbound.cc + outbound.bcc
    message = Message(
        id=message_id,
        api_key=api_key,
        team_id=team_id,
        sandbox=sandbox,
        status=Message.Status.SCHEDULED if held else Message.Status.QUEUED,
        from_email=outbound.sender.email,
        recipients=", ".join(address.email for address in recipients),
        recipient_addresses=[address.email.lower() for address in recipients],
        tags=list(outbound.tags),
        metadata=dict(outbound.metadata),
        recipient_count=len(recipients),
        subject=outbound.subject,
        template_alias=template_alias,
        template_version=template_version,
        send_at=send_at,
        scheduled_payload=task.payload if held else None,
    )
    notes = [f"for {send_at.isoformat()}"] if send_at else []
    if claim_check.is_pointer(task.payload):
        notes.append(f"body stored in S3 ({task.payload[claim_check.POINTER]['bytes']} bytes)")
    event = MessageEvent(
        message=message, type=MessageEvent.Type.SCHEDULED if held else MessageEvent.Type.QUEUED, detail="; ".join(notes)
    )
    # The sandbox never touches the live list.
    checked = None if ignore_suppressions or sandbox else outbound
    return accept_flush.Acceptance(message, event, task, size, checked)


def _withdraw(message_id, error: Exception) -> bool:
    """Take back a message whose publish failed; False if it stands as accepted after all.

    Whatever failed (SQS down, credentials, a timeout), the message is withdrawn and the client
    hears 503 and may retry. Should SQS have stored the task after all (a timeout after it took
    the message), a worker that finds no row drops the task; one that has already claimed it
    proves the publish worked, so the message stands. One conditional write decides, and no claim
    can match a withdrawn row (a cascading delete would read first and delete after, with room
    for a claim in between)."""
    withdrawn = Message.objects.filter(pk=message_id, status=Message.Status.QUEUED, attempts=0).update(
        status=Message.Status.WITHDRAWN
    )
    if withdrawn:
        Message.objects.filter(pk=message_id).delete()
        log.error("queue refused message", extra={"message_id": str(message_id), "error": repr(error)})
        return True
    log.warning("publish reported an error but a worker already has the message", extra={"message_id": str(message_id)})
    return False


def _seconds_until(moment) -> int:
    return max(0, math.ceil((moment - timezone.now()).total_seconds())) if moment else 0


# Pending: held for its send_at or waiting in SQS, and not yet tried by any worker (attempts 0).
CANCELABLE = (Message.Status.SCHEDULED, Message.Status.QUEUED)


def cancelable(message: Message) -> bool:
    """Whether cancel would take this message as it was read (cancel itself decides again, in
    one conditional write, so a worker claiming it meanwhile wins)."""
    return message.status in CANCELABLE and message.attempts == 0


def cancel(message: Message, detail: str = "") -> None:
    """Cancel a message no worker has claimed yet. Its task, if queued, finds it canceled and
    does nothing. Raises NotCancelable otherwise. `detail` says who or why, when not the client's
    own cancel through the API ("by <operator>", "the API key was revoked")."""
    now = timezone.now()
    with transaction.atomic():
        canceled = Message.objects.filter(pk=message.pk, status__in=CANCELABLE, attempts=0).update(
            status=Message.Status.CANCELED, scheduled_payload=None, updated_at=now
        )
        if canceled:
            outbox.record([MessageEvent.objects.create(message=message, type=MessageEvent.Type.CANCELED, detail=detail)])
    if not canceled:
        message.refresh_from_db()
        raise NotCancelable(message.status)
    if claim_check.enabled():
        claim_check.discard(str(message.pk))  # its body, if it was large enough to be stored


def release_scheduled() -> int:
    """Queue the scheduled messages whose send_at is within SQS's delay; return how many.

    Each is switched to queued by one conditional UPDATE before its task is published, so two
    processes releasing at once cannot both publish it; a refused publish puts it back."""
    released = 0
    horizon = timezone.now() + timedelta(seconds=settings.SQS_MAX_DELAY_SECONDS)
    due = Message.objects.filter(status=Message.Status.SCHEDULED, send_at__lte=horizon).values_list(
        "pk", "send_at", "scheduled_payload"
    )
    for message_id, send_at, payload in due[:500]:
        if not Message.objects.filter(pk=message_id, status=Message.Status.SCHEDULED).update(status=Message.Status.QUEUED):
            continue  # released or canceled meanwhile
        try:
            DeliveryTask(str(message_id), payload, delay_seconds=_seconds_until(send_at)).publish()
        except Exception:
            Message.objects.filter(pk=message_id, status=Message.Status.QUEUED, attempts=0).update(
                status=Message.Status.SCHEDULED
            )
            log.exception("could not release a scheduled message; it stays scheduled", extra={"message_id": str(message_id)})
            continue
        with transaction.atomic():
            Message.objects.filter(pk=message_id).update(scheduled_payload=None)
            MessageEvent.objects.create(message_id=message_id, type=MessageEvent.Type.RELEASED)
        released += 1
    return released
