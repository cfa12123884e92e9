"""The dead-letter drainer: every message SQS moved to the DLQ becomes a DeadLetter row, which the
admin shows with a requeue button (mail/operator.py).

Each message is recorded (committed) before it is deleted from the DLQ: a drainer killed at any
point leaves the rest in the DLQ, where it reappears and is recorded again as the same row, keyed
by SQS's message id. Several drainers may run at once."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import queues
from .callbacks import outbox
from .delivery_task import TASK_NAME, DeliveryTask, UnreadableTask
from .models import DeadLetter, Message, MessageEvent

log = logging.getLogger(__name__)


def _timestamp(attributes: dict, name: str) -> datetime | None:
    value = attributes.get(name)
    return datetime.fromtimestamp(int(value) / 1000, tz=UTC) if value and value.isdigit() else None


def _message_of(celery_message: queues.CeleryMessage) -> Message | None:
    if celery_message.task_name != TASK_NAME:
        return None
    try:
        task = DeliveryTask.received(celery_message.args, celery_message.kwargs, celery_message.retries)
        return Message.objects.filter(pk=uuid.UUID(task.message_id)).first()
    except (UnreadableTask, ValueError):
        return None


def record(sqs_message: dict) -> DeadLetter:
    """Record one DLQ message; recording it again (after a crash before its delete) only
    refreshes what changed, so the drainer never records a message twice."""
    attributes = sqs_message.get("Attributes", {})
    body = sqs_message["Body"]
    try:
        celery_message = queues.read_celery_message(body)
    except queues.UnreadableMessage as exc:
        celery_message, problem = None, str(exc)
    message = _message_of(celery_message) if celery_message else None
    if message is not None:
        reason = message.last_error or f"dead-lettered while {message.status}"
    elif celery_message is None:
        reason = problem
    else:
        reason = f"no message matches this task ({celery_message.task_name or 'no task name'})"
    receive_count = int(attributes.get("ApproximateReceiveCount", 0))
    # A task of a message whose recipient was erased may still reach the DLQ: its mail is not kept.
    keep_task = celery_message is not None and (message is None or message.erased_at is None)
    with transaction.atomic():
        dead_letter, created = DeadLetter.objects.get_or_create(
            sqs_message_id=sqs_message["MessageId"],
            defaults={
                "message": message,
                "task_name": celery_message.task_name if celery_message else "",
                "task_id": celery_message.task_id if celery_message else "",
                # As DeliveryTask.record() keeps a task: its arguments, then its keyword arguments.
                "task_args": [*celery_message.args, celery_message.kwargs] if keep_task else None,
                "raw_body": "" if celery_message or (message and message.erased_at) else body[:100_000],
                "reason": reason,
                "receive_count": receive_count,
                "first_queued_at": _timestamp(attributes, "SentTimestamp"),
            },
        )
        if created and message is not None:
            outbox.record(
                [MessageEvent.objects.create(message=message, type=MessageEvent.Type.DEAD_LETTERED, detail=reason[:500])]
            )
        if not created:
            DeadLetter.objects.filter(pk=dead_letter.pk).update(
                last_seen_at=timezone.now(), receive_count=max(dead_letter.receive_count, receive_count)
            )
    log.warning(
        "dead letter recorded",
        extra={"sqs_message_id": sqs_message["MessageId"], "message_id": str(message.pk) if message else None, "new": created},
    )
    return dead_letter


def drain_once(wait_seconds: int = 10) -> int:
    """Move what the DLQ holds now into DeadLetter rows; return how many messages were handled."""
    client = queues.sqs_client(read_timeout=wait_seconds + 5)
    dlq_url = client.get_queue_url(QueueName=settings.SQS_DLQ_NAME)["QueueUrl"]
    handled = 0
    while True:
        received = client.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=queues.SQS_MAX_BATCH,
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
