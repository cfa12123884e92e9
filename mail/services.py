"""The use cases: accept a message, deliver it. Views and tasks only call these."""

from __future__ import annotations

import enum
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from providers.base import OutboundMessage, ProviderError, SendResult
from providers.registry import Provider, build_provider

from . import queues
from .models import Message, MessageEvent

log = logging.getLogger(__name__)

DELIVER_TASK = "mail.deliver"


class QueueUnavailable(Exception):
    """The queue did not take the message: it is not accepted (guarantee 1)."""


class TooLargeForQueue(Exception):
    def __init__(self, size: int, limit: int):
        super().__init__(f"the message needs {size} bytes in the queue; the limit is {limit}")
        self.size = size
        self.limit = limit


class MessageBusy(Exception):
    """Another worker holds a live claim on this message; SQS will hand it to us again later."""


# --- accept ----------------------------------------------------------------------------------

def accept_message(api_key, fields: dict) -> Message:
    """Record the message and queue its delivery; only a message SQS took is accepted."""
    message_id = uuid.uuid4()
    outbound = OutboundMessage(message_id=str(message_id), **fields)
    task_args = [str(message_id), outbound.to_payload()]
    size = queues.task_wire_size(task_args)
    if size > settings.SQS_MAX_MESSAGE_BYTES:
        raise TooLargeForQueue(size, settings.SQS_MAX_MESSAGE_BYTES)

    recipients = outbound.to + outbound.cc + outbound.bcc
    with transaction.atomic():
        message = Message.objects.create(
            id=message_id,
            api_key=api_key,
            from_email=outbound.sender.email,
            recipients=", ".join(address.email for address in recipients),
            recipient_count=len(recipients),
            subject=outbound.subject,
        )
        MessageEvent.objects.create(message=message, type=MessageEvent.Type.QUEUED)

    # Published after the commit, so the worker always finds the row.
    try:
        publish_delivery(task_args)
    except Exception as exc:
        # Whatever failed (SQS down, credentials, timeout), the client hears 503 and may retry;
        # the row goes so no "queued" message without a task is left behind. Should SQS have
        # stored the task after all, the worker finds no row and drops it.
        message.delete()
        log.warning("queue refused message", extra={"message_id": str(message_id), "error": repr(exc)})
        raise QueueUnavailable(str(exc)) from exc

    log.info(
        "message accepted",
        extra={"message_id": str(message_id), "api_key_prefix": api_key.prefix, "recipients": len(recipients), "queue_bytes": size},
    )
    return message


def publish_delivery(task_args: list) -> None:
    from mailer_project.celery import app

    queues.use_predefined_queue()
    app.send_task(
        DELIVER_TASK,
        args=task_args,
        queue=settings.SQS_QUEUE_NAME,
        # Celery would copy a repr of the arguments (the mail itself) into the headers, where it
        # shows in logs and the DLQ and, escaped, makes the queue message unpredictably larger.
        argsrepr=repr(task_args[:1]),
        kwargsrepr="{}",
    )


# --- deliver ---------------------------------------------------------------------------------

class Claim(enum.Enum):
    CLAIMED = "claimed"
    FINISHED = "finished"  # already sent or failed: nothing to do
    BUSY = "busy"  # another worker's claim is live
    MISSING = "missing"  # no such message (its publish was reported as failed)


def claim_message(message_id: str) -> Claim:
    """Atomically take the message for sending, or say why not (guarantee 4).

    A single conditional UPDATE: of two workers holding the same SQS message, exactly one
    matches. A claim whose lease has run out belonged to a worker that died; it can be taken."""
    now = timezone.now()
    claimable = Q(status=Message.Status.QUEUED) | Q(status=Message.Status.SENDING, lease_expires_at__lt=now)
    claimed = Message.objects.filter(claimable, pk=message_id).update(
        status=Message.Status.SENDING,
        lease_expires_at=now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS),
        attempts=F("attempts") + 1,
        updated_at=now,
    )
    if claimed:
        return Claim.CLAIMED
    status = Message.objects.filter(pk=message_id).values_list("status", flat=True).first()
    if status is None:
        return Claim.MISSING
    return Claim.BUSY if status == Message.Status.SENDING else Claim.FINISHED


_providers: dict[str, Provider] = {}


def provider_named(name: str) -> Provider:
    # One instance per process, so its HTTP connection pool is reused across messages.
    if name not in _providers:
        _providers[name] = build_provider(name, settings)
    return _providers[name]


def deliver_message(message_id: str, payload: dict) -> None:
    claim = claim_message(message_id)
    if claim is Claim.MISSING:
        log.warning("no such message; dropping its task", extra={"message_id": message_id})
        return
    if claim is Claim.FINISHED:
        log.info("message already finished; not sending again", extra={"message_id": message_id})
        return
    if claim is Claim.BUSY:
        raise MessageBusy(message_id)

    provider = provider_named(settings.MAIL_PROVIDERS[0])
    try:
        result = provider.send(OutboundMessage.from_payload(message_id, payload))
    except ProviderError as error:
        record_failed_attempt(message_id, error)
        raise
    mark_sent(message_id, result)


def record_failed_attempt(message_id: str, error: ProviderError) -> None:
    """Give the claim back and note why: the SQS message is not acked, so it comes back."""
    now = timezone.now()
    with transaction.atomic():
        Message.objects.filter(pk=message_id, status=Message.Status.SENDING).update(
            status=Message.Status.QUEUED, lease_expires_at=None, last_error=str(error), updated_at=now
        )
        MessageEvent.objects.create(
            message_id=message_id,
            type=MessageEvent.Type.ATTEMPT_FAILED,
            provider=error.provider,
            status_code=error.status_code,
            detail=f"{error.kind}: {error.reason}",
        )
    log.warning(
        "send attempt failed",
        extra={"message_id": message_id, "provider": error.provider, "error_kind": error.kind, "status_code": error.status_code},
    )


def mark_sent(message_id: str, result: SendResult) -> None:
    now = timezone.now()
    with transaction.atomic():
        updated = Message.objects.filter(pk=message_id, status=Message.Status.SENDING).update(
            status=Message.Status.SENT,
            provider=result.provider,
            provider_message_id=result.provider_message_id,
            lease_expires_at=None,
            last_error="",
            sent_at=now,
            updated_at=now,
        )
        MessageEvent.objects.create(
            message_id=message_id, type=MessageEvent.Type.SENT, provider=result.provider, status_code=result.status_code
        )
    if not updated:
        log.error("sent, but the claim was gone: another worker may have sent it too", extra={"message_id": message_id})
    log.info("message sent", extra={"message_id": message_id, "provider": result.provider, "provider_message_id": result.provider_message_id})
