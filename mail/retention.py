"""How long what we keep is kept: bodies for BODY_RETENTION_DAYS, message rows (and their events)
for MESSAGE_RETENTION_DAYS once the message is done. Run by the housekeeping command.

Each call deletes or blanks at most RETENTION_BATCH_SIZE rows in one short transaction and says how
many, so the housekeeping loop, which calls it every few seconds, works through a backlog without
holding long locks or starving the scheduled sends it also releases. Rows are picked oldest first
with SKIP LOCKED, so a row a worker or an operator holds is passed over, not waited for.

A message still on its way (scheduled, queued, sending) is never deleted, however old: its row is
what keeps a second worker from sending it again (mail/claims.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import DeadLetter, Message

#: The statuses a message ends in: nothing will write to its row again except a provider's late event.
DONE = (
    Message.Status.SENT,
    Message.Status.DELIVERED,
    Message.Status.BOUNCED,
    Message.Status.COMPLAINED,
    Message.Status.DROPPED,
    Message.Status.FAILED,
    Message.Status.CANCELED,
)


def forget_old_bodies(now: datetime | None = None) -> int:
    """Blank the task (the mail itself) kept with dead letters older than BODY_RETENTION_DAYS; the
    row stays, saying what happened, but can no longer be requeued. Returns how many were blanked."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.BODY_RETENTION_DAYS)
    with transaction.atomic():
        ids = list(
            DeadLetter.objects.filter(first_seen_at__lt=cutoff)
            .exclude(task_args=None, raw_body="")
            .order_by("first_seen_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[: settings.RETENTION_BATCH_SIZE]
        )
        return DeadLetter.objects.filter(pk__in=ids).update(task_args=None, raw_body="")


def delete_old_messages(now: datetime | None = None) -> int:
    """Delete done messages created more than MESSAGE_RETENTION_DAYS ago, with their events (and
    dead letters that old). Returns how many messages were deleted."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.MESSAGE_RETENTION_DAYS)
    with transaction.atomic():
        ids = list(
            Message.objects.filter(created_at__lt=cutoff, status__in=DONE)
            .order_by("created_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[: settings.RETENTION_BATCH_SIZE]
        )
        old_letters = list(
            DeadLetter.objects.filter(first_seen_at__lt=cutoff)
            .order_by("first_seen_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[: settings.RETENTION_BATCH_SIZE]
        )
        DeadLetter.objects.filter(pk__in=old_letters).delete()
        # Django deletes the events in one statement and unlinks suppressions and dead letters.
        _, deleted = Message.objects.filter(pk__in=ids).delete()
    return deleted.get(Message._meta.label, 0)
