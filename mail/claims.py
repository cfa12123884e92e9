"""A worker's claim on a message: taken before any provider is called, given back or ended with
what happened. This is where "never sent twice when we can know better" is enforced.

The claim is one conditional UPDATE (`queued → sending`, with a lease), so of two workers holding
tasks for the same message only one calls a provider. The new `attempts` is the claim's token:
every later write matches it, so a worker whose lease ran out cannot overwrite the claim of the
worker that took over. The claim also moves the row to its task's step, so tasks of an earlier
step (a late duplicate, a dead worker's redelivery) no longer match and are dropped."""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from providers.base import ProviderError, SendResult
from providers.events import WebhookBatch

from . import delivery_sql, status
from .callbacks import outbox
from .delivery_task import DeliveryTask
from .models import Message, MessageEvent
from .routing import Skip

log = logging.getLogger(__name__)


class ClaimKind(enum.Enum):
    CLAIMED = "claimed"
    DONE = "done"  # sent (or further along), canceled or withdrawn: ack, send nothing
    FAILED = "failed"  # the message has failed: keep raising until SQS dead-letters the task
    BUSY = "busy"  # another worker's claim is live
    SUPERSEDED = "superseded"  # a later step has been reached: this task is a late duplicate
    MISSING = "missing"  # no such message (its publish was reported as failed)


@dataclass(frozen=True)
class Claim:
    kind: ClaimKind
    message_id: str
    token: int = 0  # the message's attempts once claimed; every write of this worker matches it
    status: str = ""
    step: int = 0
    lease_expires_at: datetime | None = None
    last_error: str = ""
    # Set while an earlier attempt's outcome is unknown (mail/ambiguity.py): when it began.
    ambiguous_since: datetime | None = None
    # A sandbox key's mail: sent by providers/sandbox.py only.
    sandbox: bool = False


def take(task: DeliveryTask) -> Claim:
    """Atomically take the message for sending at the task's step, or say why not. A claim whose
    lease has run out belonged to a worker that died; it can be taken over, and the attempt it
    made is recorded as ambiguous (the provider may have the mail: mail/ambiguity.py asks before
    anything is sent again). A recheck task may only take over such a claim."""
    for _ in range(2):
        now = timezone.now()
        if not task.recheck:
            # The usual case, one statement: the conditional UPDATE reads the row back.
            lease_until = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
            claimed_row = delivery_sql.claim(task.message_id, task.step, now, lease_until)
            if claimed_row is not None:
                return _claim(ClaimKind.CLAIMED, task.message_id, claimed_row)
        row = _read(task.message_id)
        if row is None:
            return Claim(ClaimKind.MISSING, task.message_id)
        claimed = 0
        if _expired(row, task, now):
            claimed = _take_over(task, row, now)
            row = _read(task.message_id) if claimed else row
        kind = ClaimKind.CLAIMED if claimed else _why_not(row, task)
        if kind is not None:
            return _claim(kind, task.message_id, row)
        # Queued again between the UPDATE and the read (its holder let go): try once more.
    return _claim(ClaimKind.BUSY, task.message_id, row)


def _claim_fields(task: DeliveryTask, now: datetime) -> dict:
    return {
        "status": Message.Status.SENDING,
        "step": task.step,
        "lease_expires_at": now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS),
        "attempts": F("attempts") + 1,
        "updated_at": now,
    }


def _read(message_id) -> dict | None:
    return (
        Message.objects.filter(pk=message_id)
        .values("status", "step", "attempts", "lease_expires_at", "last_error", "ambiguous_since", "sandbox")
        .first()
    )


def _claim(kind: ClaimKind, message_id: str, row: dict) -> Claim:
    return Claim(
        kind,
        message_id,
        row["attempts"],
        row["status"],
        row["step"],
        row["lease_expires_at"],
        row["last_error"],
        row["ambiguous_since"],
        row["sandbox"],
    )


def _expired(row: dict, task: DeliveryTask, now: datetime) -> bool:
    return (
        row["status"] == Message.Status.SENDING
        and row["lease_expires_at"] is not None
        and row["lease_expires_at"] < now
        and row["step"] <= task.step
    )


def _take_over(task: DeliveryTask, row: dict, now: datetime) -> int:
    """Take the claim of a worker that died holding it (matched by its token, so of two workers
    finding it expired one wins), and record its attempt as ambiguous: it began when that claim
    was taken, and nobody heard how it ended."""
    began = row["lease_expires_at"] - timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        taken = Message.objects.filter(
            pk=task.message_id, status=Message.Status.SENDING, attempts=row["attempts"], lease_expires_at__lt=now
        ).update(**_claim_fields(task, now), ambiguous_since=Coalesce(F("ambiguous_since"), Value(began)))
        if taken:
            MessageEvent.objects.create(
                message_id=task.message_id,
                type=MessageEvent.Type.AMBIGUOUS,
                detail=(
                    f"attempt {row['attempts']}, begun at {began:%Y-%m-%d %H:%M:%S} UTC, never finished (its worker "
                    "stopped); a provider may have the mail, so it is not sent again before the providers are asked"
                ),
            )
    if taken:
        log.warning("took over an expired claim: its attempt is ambiguous", extra={"message_id": task.message_id})
    return taken


def _why_not(row: dict, task: DeliveryTask) -> ClaimKind | None:
    if row["step"] > task.step:
        return ClaimKind.SUPERSEDED
    if row["status"] == Message.Status.SENDING:
        return ClaimKind.BUSY
    if row["status"] == Message.Status.FAILED:
        return ClaimKind.FAILED
    if row["status"] == Message.Status.QUEUED:
        # A recheck finds the holder handed the message on: its next task is queued.
        return ClaimKind.SUPERSEDED if task.recheck else None
    return ClaimKind.DONE


def record_skips(claim: Claim, skips: list[Skip]) -> None:
    """The providers passed over for their open circuits, written as they are passed over: a
    message may fail only once each has had its turn (mail/routing.py), whatever becomes of
    this attempt."""
    if not skips:
        # Nothing to write, and nothing asked of the database: bulk_create opens a transaction
        # even for no rows when handed a generator, and the connection it takes from the pool
        # would be held through the provider's send, capping a worker's sends in flight at
        # DATABASE_POOL_SIZE (docs/benchmarks.md, "Issue 21: delivery").
        return
    MessageEvent.objects.bulk_create(
        [
            MessageEvent(
                message_id=claim.message_id, type=MessageEvent.Type.SKIPPED, provider=s.provider, detail=s.detail, created_at=s.at
            )
            for s in skips
        ]
    )


def give_back(claim: Claim, event: tuple[str, str] | None = None) -> bool:
    """Leave the message queued for its next task, the claim untouched by any error; record
    `event` (type, detail) with it. False when the claim is no longer ours."""
    with transaction.atomic():
        held = Message.objects.filter(pk=claim.message_id, status=Message.Status.SENDING, attempts=claim.token).update(
            status=Message.Status.QUEUED, lease_expires_at=None, updated_at=timezone.now()
        )
        if held and event:
            MessageEvent.objects.create(message_id=claim.message_id, type=event[0], detail=event[1])
    return bool(held)


def end(claim: Claim, new_status: str, error: ProviderError, event_type: str, note: str) -> bool:
    """Leave the claim with the message in `new_status` (queued for its next task, or failed),
    the provider's words as its last error. False when the claim is no longer ours."""
    with transaction.atomic():
        ours = Message.objects.filter(pk=claim.message_id, status=Message.Status.SENDING, attempts=claim.token).update(
            status=new_status, lease_expires_at=None, last_error=str(error), updated_at=timezone.now()
        )
        if ours:
            event = MessageEvent.objects.create(
                message_id=claim.message_id,
                type=event_type,
                provider=error.provider,
                status_code=error.status_code,
                detail=f"{error.kind}: {error.reason} — {note}",
            )
            outbox.record([event])
    return bool(ours)


def resend_after_ambiguity(claim: Claim, detail: str) -> bool:
    """Record that an ambiguous attempt went unclaimed by every provider and the message is sent
    again now (a fact, written before the send). False when the claim is no longer ours."""
    with transaction.atomic():
        ours = Message.objects.filter(pk=claim.message_id, status=Message.Status.SENDING, attempts=claim.token).update(
            ambiguous_since=None, updated_at=timezone.now()
        )
        if ours:
            MessageEvent.objects.create(message_id=claim.message_id, type=MessageEvent.Type.RESENT, detail=detail)
    return bool(ours)


# A sent message stays sent; these may still become sent (a failed one, when a worker whose
# lease ran out turns out to have sent it after all).
NOT_YET_SENT = (Message.Status.QUEUED, Message.Status.SENDING, Message.Status.FAILED)


def record_sent(claim: Claim, result: SendResult, detail: str = "") -> bool:
    """Record the send; False when the claim had been taken over meanwhile (another worker may send
    it too). A provider accepted the mail: that is a fact whatever became of the claim, so this
    write does not depend on it. A database outage is waited out while the claim still keeps
    other workers away; only past its lease would a redelivery send again."""
    delay = 0.5
    while True:
        try:
            return _write_sent(claim, result, detail)
        except (OperationalError, InterfaceError):
            if timezone.now() + timedelta(seconds=delay) >= claim.lease_expires_at:
                raise
            log.warning("could not record a send; trying again", extra={"message_id": claim.message_id}, exc_info=True)
            close_old_connections()
            time.sleep(delay)
            delay = min(delay * 2, 5)


def _write_sent(claim: Claim, result: SendResult, detail: str) -> bool:
    now = timezone.now()
    sent = {
        "status": Message.Status.SENT,
        "provider": result.provider,
        "provider_message_id": result.provider_message_id,
        "lease_expires_at": None,
        "ambiguous_since": None,
        "last_error": "",
        "sent_at": now,
        "updated_at": now,
    }
    event = MessageEvent(
        message_id=claim.message_id,
        type=MessageEvent.Type.SENT,
        provider=result.provider,
        status_code=result.status_code,
        detail=detail,
    )
    with transaction.atomic():
        # Our claim still held, or else whatever became of it; the event; and whether anything
        # else is to be done, in one round trip (mail/delivery_sql.py).
        written = delivery_sql.write_sent(claim.message_id, claim.token, sent, event, NOT_YET_SENT)
        if written.listening:
            outbox.record([written.event])
        if written.early_events:
            status.catch_up(claim.message_id)  # the provider's webhook came first
        if result.events:
            # What the provider knew at once (the sandbox): recorded as its webhook would be, in
            # the same transaction, so a crash cannot leave the send without its outcome.
            status.record_events(WebhookBatch(result.events))
    return written.held
