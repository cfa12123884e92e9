"""Dead letters: draining the DLQ into DeadLetter rows, and an operator's requeue and discard."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import claim_check, queues, services
from .models import DeadLetter, Message, MessageEvent

log = logging.getLogger(__name__)


@dataclass
class DecodedTask:
    task_name: str = ""
    task_id: str = ""
    args: list | None = None  # None: not a task we can read
    problem: str = ""  # why it could not be read


def decode_task(sqs_body: str) -> DecodedTask:
    """Read a Celery task as kombu wrote it to SQS (base64 of a JSON envelope whose body is
    base64 of [args, kwargs, embed]); say what was wrong with anything else."""
    try:
        envelope = json.loads(base64.b64decode(sqs_body, validate=True))
        headers = envelope.get("headers") or {}
        decoded = DecodedTask(task_name=str(headers.get("task", "")), task_id=str(headers.get("id", "")))
        body = json.loads(base64.b64decode(envelope["body"], validate=True))
        args, kwargs = body[0], body[1]
        decoded.args = [*args, kwargs] if isinstance(kwargs, dict) else list(args)
        return decoded
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        return DecodedTask(problem=f"not a readable Celery task: {exc!r}")


def _message_for(decoded: DecodedTask) -> Message | None:
    if decoded.task_name != services.DELIVER_TASK or not decoded.args:
        return None
    try:
        return Message.objects.filter(pk=uuid.UUID(str(decoded.args[0]))).first()
    except ValueError:
        return None


def _timestamp(attributes: dict, name: str) -> datetime | None:
    value = attributes.get(name)
    return datetime.fromtimestamp(int(value) / 1000, tz=dt_timezone.utc) if value and value.isdigit() else None


def record(sqs_message: dict) -> DeadLetter:
    """Record one DLQ message; recording it again (after a crash before its delete) only
    refreshes what changed, so the drainer never records a message twice."""
    attributes = sqs_message.get("Attributes", {})
    decoded = decode_task(sqs_message["Body"])
    message = _message_for(decoded)
    if message is not None:
        reason = message.last_error or f"dead-lettered while {message.status}"
    elif decoded.problem:
        reason = decoded.problem
    else:
        reason = f"no message matches this task ({decoded.task_name or 'no task name'})"
    now = timezone.now()
    with transaction.atomic():
        dead_letter, created = DeadLetter.objects.get_or_create(
            sqs_message_id=sqs_message["MessageId"],
            defaults={
                "message": message,
                "task_name": decoded.task_name,
                "task_id": decoded.task_id,
                "task_args": decoded.args,
                "raw_body": "" if decoded.args is not None else sqs_message["Body"][:100_000],
                "reason": reason,
                "receive_count": int(attributes.get("ApproximateReceiveCount", 0)),
                "first_queued_at": _timestamp(attributes, "SentTimestamp"),
            },
        )
        if created and message is not None:
            MessageEvent.objects.create(message=message, type=MessageEvent.Type.DEAD_LETTERED, detail=reason[:500])
        if not created:
            DeadLetter.objects.filter(pk=dead_letter.pk).update(
                last_seen_at=now, receive_count=max(dead_letter.receive_count, int(attributes.get("ApproximateReceiveCount", 0)))
            )
    log.warning("dead letter recorded", extra={"sqs_message_id": sqs_message["MessageId"], "message_id": str(message.pk) if message else None, "new": created})
    return dead_letter


def drain_once(wait_seconds: int = 10) -> int:
    """Move what the DLQ holds now into DeadLetter rows; return how many messages were handled.

    Each message is recorded (committed) before it is deleted from the DLQ: a crash in between
    leaves it in the DLQ, where it reappears and is recorded again as the same row."""
    client = queues.sqs_client(read_timeout=wait_seconds + 5)
    dlq_url = client.get_queue_url(QueueName=settings.SQS_DLQ_NAME)["QueueUrl"]
    handled = 0
    while True:
        received = client.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            # Long enough to record a batch; a drainer killed mid-batch leaves it to reappear after this.
            VisibilityTimeout=settings.SQS_DLQ_DRAIN_VISIBILITY_TIMEOUT,
        ).get("Messages", [])
        if not received:
            return handled
        for sqs_message in received:
            record(sqs_message)
        client.delete_message_batch(
            QueueUrl=dlq_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
        )
        handled += len(received)
        wait_seconds = 0  # drain what is left without waiting, then return


# --- an operator's actions ----------------------------------------------------------------------

# A message that is not sent and not being sent. (A queued one may be a poison task's, whose
# task is gone; should one still be waiting, the new step supersedes it.)
REQUEUEABLE = (Message.Status.FAILED, Message.Status.QUEUED)


def requeue(message: Message, operator: str) -> bool:
    """Send a failed (or stuck) message again with fresh retries, from the first provider.

    The message moves to a new step, so any older task of it still around is superseded, and
    a second requeue of the same message finds it no longer failed: nothing is sent twice."""
    dead_letter = message.dead_letters.exclude(task_args=None).order_by("-first_seen_at").first()
    if dead_letter is None or len(dead_letter.task_args) < 2:
        return False
    payload = dead_letter.task_args[1]
    if claim_check.is_pointer(payload) and not claim_check.exists(str(message.pk)):
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
        services.publish_delivery(str(message.pk), payload, step=step)
    except Exception as exc:
        # Not requeued after all: put it back as it was, so the operator can try again.
        with transaction.atomic():
            Message.objects.filter(pk=message.pk, step=step, status=Message.Status.QUEUED).update(status=Message.Status.FAILED)
            message.dead_letters.filter(status=DeadLetter.Status.REQUEUED, handled_by=operator).update(
                status=DeadLetter.Status.PENDING, handled_by="", handled_at=None
            )
            MessageEvent.objects.create(message=message, type=MessageEvent.Type.REQUEUED, detail=f"by {operator}: failed, the queue refused it")
        log.exception("requeue failed", extra={"message_id": str(message.pk)})
        raise services.QueueUnavailable(str(exc)) from exc
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
            Message.objects.filter(pk=dead_letter.message_id, status=Message.Status.QUEUED).update(
                status=Message.Status.FAILED, last_error=f"discarded by {operator}", updated_at=now
            )
            MessageEvent.objects.create(message_id=dead_letter.message_id, type=MessageEvent.Type.DISCARDED, detail=f"by {operator}")
    if discarded and dead_letter.message_id and claim_check.enabled():
        # Its stored body, if it had one, unless a live task of the message still needs it (a
        # discarded stale duplicate's message may be on its way to be sent).
        live = Message.objects.filter(pk=dead_letter.message_id, status__in=(Message.Status.SENDING, Message.Status.QUEUED)).exists()
        if not live:
            claim_check.discard(str(dead_letter.message_id))
    return bool(discarded)
