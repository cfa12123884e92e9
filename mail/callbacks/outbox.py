"""The outbox: a Delivery row per endpoint that wants an event, written in the transaction that
writes the event, and its task published once that transaction commits. A publish that fails, a
wait longer than SQS's delay, a task lost in the dead-letter queue: housekeeping publishes the row
again (`release_due`), so a recorded callback is never lost, only late."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from mail.models import Message, MessageEvent

from .events import NAMES, CallbackEvent, wanted
from .models import Delivery, Endpoint
from .task import CallbackTask

log = logging.getLogger(__name__)


def record(events: Iterable[MessageEvent]) -> None:
    """Record the callbacks these saved events cause, inside the caller's transaction. One query
    when no endpoint of the messages' keys is enabled (the usual case)."""
    named = [event for event in events if event.type in NAMES]
    if not named:
        return
    message_ids = {event.message_id for event in named}
    endpoints = list(
        Endpoint.objects.filter(enabled=True, api_key__revoked=False, api_key__messages__id__in=message_ids)
        # A key that expired or was revoked no longer hears of its mail (mail/keys.py revoke also
        # disables its endpoints, for the record in the admin).
        .filter(Q(api_key__expiry_date__isnull=True) | Q(api_key__expiry_date__gt=timezone.now()))
        .annotate(for_message=F("api_key__messages__id"))
        .only("id", "event_types")
    )
    if not endpoints:
        return
    # By text: an event may hold its message's id as a UUID or as the string it was given.
    context = {
        str(pk): (tags, metadata)
        for pk, tags, metadata in Message.objects.filter(pk__in=message_ids).values_list("pk", "tags", "metadata")
    }
    deliveries = []
    for event in named:
        callback = CallbackEvent.of(event, *context[str(event.message_id)])
        for endpoint in endpoints:
            if str(endpoint.for_message) == str(event.message_id) and wanted(endpoint.event_types, callback.type):
                deliveries.append(
                    Delivery(
                        endpoint_id=endpoint.id,
                        message_id=event.message_id,
                        event_id=callback.event_id,
                        event_type=callback.type,
                        payload=callback.to_wire(),
                    )
                )
    if deliveries:
        Delivery.objects.bulk_create(deliveries)
        ids = [delivery.id for delivery in deliveries]
        transaction.on_commit(lambda: publish(ids), robust=True)


def publish(delivery_ids: list, delay_seconds: int = 0) -> int:
    """Publish the tasks of these deliveries and note it; those SQS did not take stay unqueued
    for housekeeping. How many were published."""
    failures = CallbackTask.publish_many([CallbackTask(str(pk), delay_seconds) for pk in delivery_ids])
    published = [pk for pk in delivery_ids if str(pk) not in failures]
    if failures:
        log.warning(
            "callback tasks not published; housekeeping will",
            extra={"count": len(failures), "error": repr(next(iter(failures.values())))[:300]},
        )
    Delivery.objects.filter(pk__in=published).update(queued_at=timezone.now())
    return len(published)


def release_due() -> int:
    """Publish the deliveries due within SQS's delay that have no task in SQS (held over a long
    wait, or a publish that failed), and put back those whose task went missing."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CALLBACK_STALE_SECONDS)
    Delivery.objects.filter(
        Q(status=Delivery.Status.PENDING, queued_at__isnull=False, next_attempt_at__lt=stale)
        | Q(status=Delivery.Status.DELIVERING, lease_expires_at__lt=stale)
    ).update(status=Delivery.Status.PENDING, queued_at=None, lease_expires_at=None)
    horizon = now + timedelta(seconds=settings.SQS_MAX_DELAY_SECONDS)
    released = 0
    due = Delivery.objects.filter(status=Delivery.Status.PENDING, queued_at__isnull=True, next_attempt_at__lte=horizon)
    for pk, next_attempt_at in due.values_list("pk", "next_attempt_at")[:500]:
        # One conditional write first, so two housekeepers cannot both publish it.
        if not Delivery.objects.filter(pk=pk, status=Delivery.Status.PENDING, queued_at__isnull=True).update(queued_at=now):
            continue
        delay = max(0, math.ceil((next_attempt_at - timezone.now()).total_seconds()))
        try:
            CallbackTask(str(pk), delay).publish()
        except Exception:
            Delivery.objects.filter(pk=pk, status=Delivery.Status.PENDING).update(queued_at=None)
            log.exception("could not publish a callback; it stays due", extra={"delivery_id": str(pk)})
            continue
        released += 1
    return released


def replay(deliveries) -> int:
    """Deliver these again now (any but one a worker holds); how many were queued."""
    ids = list(deliveries.exclude(status=Delivery.Status.DELIVERING).values_list("pk", flat=True))
    Delivery.objects.filter(pk__in=ids).exclude(status=Delivery.Status.DELIVERING).update(
        status=Delivery.Status.PENDING, next_attempt_at=timezone.now(), queued_at=None, last_error="", updated_at=timezone.now()
    )
    return publish(ids)


def replay_failed(endpoints, since, until) -> int:
    """Every failed delivery to these endpoints created in [since, until)."""
    return replay(
        Delivery.objects.filter(
            endpoint__in=endpoints, status=Delivery.Status.FAILED, created_at__gte=since, created_at__lt=until
        )
    )
