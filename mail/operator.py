"""What an operator does from the admin: requeue a failed message with fresh retries, or give up
on a dead letter. Each is safe to click twice: a message is never requeued into two sends."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import claim_check
from .callbacks import outbox
from .delivery_task import DeliveryTask, UnreadableTask
from .exceptions import QueueUnavailable
from .models import DeadLetter, Message, MessageEvent

log = logging.getLogger(__name__)

# A message that is not sent and not being sent. (A queued one may be a poison task's, whose
# task is gone; should one still be waiting, the new step supersedes it.)
REQUEUEABLE = (Message.Status.FAILED, Message.Status.QUEUED)


def _last_task(message: Message) -> DeliveryTask | None:
    """The message's task as its latest dead letter kept it: the mail travels only in tasks."""
    dead_letter = message.dead_letters.exclude(task_args=None).order_by("-first_seen_at").first()
    if dead_letter is None:
        return None
    try:
        return DeliveryTask.from_record(dead_letter.task_args)
    except (UnreadableTask, ValueError):
        return None


def requeueable(message: Message) -> bool:
    """Whether to offer the operator a requeue of this message as it was read: failed, or queued
    with its task dead-lettered and not yet handled (a poison task's), and its content kept by a
    dead letter. requeue itself decides again."""
    dead_lettered = (
        message.status == Message.Status.QUEUED and message.dead_letters.filter(status=DeadLetter.Status.PENDING).exists()
    )
    return (message.status == Message.Status.FAILED or dead_lettered) and _last_task(message) is not None


def requeue(message: Message, operator: str) -> bool:
    """Send a failed (or stuck) message again with fresh retries, from the first provider.

    The message moves to a new step, so any older task of it still around is superseded, and a
    second requeue of the same message finds it no longer failed: nothing is sent twice. Raises
    QueueUnavailable when SQS does not take the task (the message is left as it was)."""
    task = _last_task(message)
    if task is None:
        return False
    if claim_check.is_pointer(task.payload) and not claim_check.exists(str(message.pk)):
        # Its body was stored in S3 and has expired (or S3 does not answer): nothing to send.
        return False
    with transaction.atomic():
        requeued = Message.objects.filter(pk=message.pk, status__in=REQUEUEABLE).update(
            status=Message.Status.QUEUED, step=F("step") + 1, lease_expires_at=None, updated_at=timezone.now()
        )
        if not requeued:
            return False
        step = Message.objects.values_list("step", flat=True).get(pk=message.pk)
        MessageEvent.objects.create(message=message, type=MessageEvent.Type.REQUEUED, detail=f"by {operator}")
        message.dead_letters.filter(status=DeadLetter.Status.PENDING).update(
            status=DeadLetter.Status.REQUEUED, handled_by=operator, handled_at=timezone.now()
        )
    # After the commit, so the worker finds the row at its new step.
    try:
        DeliveryTask(str(message.pk), task.payload, step=step).publish()
    except Exception as exc:
        # Not requeued after all: put it back as it was, so the operator can try again.
        with transaction.atomic():
            Message.objects.filter(pk=message.pk, step=step, status=Message.Status.QUEUED).update(status=Message.Status.FAILED)
            message.dead_letters.filter(status=DeadLetter.Status.REQUEUED, handled_by=operator).update(
                status=DeadLetter.Status.PENDING, handled_by="", handled_at=None
            )
            MessageEvent.objects.create(
                message=message, type=MessageEvent.Type.REQUEUED, detail=f"by {operator}: failed, the queue refused it"
            )
        log.exception("requeue failed", extra={"message_id": str(message.pk)})
        raise QueueUnavailable(str(exc)) from exc
    log.info("message requeued", extra={"message_id": str(message.pk), "operator": operator})
    return True


def discard(dead_letter: DeadLetter, operator: str) -> bool:
    """Give up on a dead letter: it is kept for the record, and its message, if unsent, failed."""
    now = timezone.now()
    with transaction.atomic():
        discarded = DeadLetter.objects.filter(pk=dead_letter.pk, status=DeadLetter.Status.PENDING).update(
            status=DeadLetter.Status.DISCARDED, handled_by=operator, handled_at=now
        )
        if discarded and dead_letter.message_id:
            failed = Message.objects.filter(pk=dead_letter.message_id, status=Message.Status.QUEUED).update(
                status=Message.Status.FAILED, last_error=f"discarded by {operator}", updated_at=now
            )
            event = MessageEvent.objects.create(
                message_id=dead_letter.message_id, type=MessageEvent.Type.DISCARDED, detail=f"by {operator}"
            )
            if failed:
                outbox.record([event])  # message.failed for the client
    if discarded and dead_letter.message_id and claim_check.enabled():
        # Its stored body, if it had one, unless a live task of the message still needs it (a
        # discarded stale duplicate's message may be on its way to be sent).
        live = Message.objects.filter(
            pk=dead_letter.message_id, status__in=(Message.Status.SENDING, Message.Status.QUEUED)
        ).exists()
        if not live:
            claim_check.discard(str(dead_letter.message_id))
    return bool(discarded)
