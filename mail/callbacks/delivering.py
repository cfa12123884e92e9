"""One attempt of one callback: claim the delivery, sign, send, then decide and record.

The claim is one conditional UPDATE, which also bounds the deliveries in flight to that endpoint
(CALLBACK_ENDPOINT_CONCURRENCY): a task over the bound is put back with a short SQS delay and
takes no worker meanwhile. Each claim is the next attempt
number, so a task SQS hands out twice, or a dead worker's task handed out again, never makes two
requests under one attempt number."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import sender, signing
from .events import body_of
from .models import Attempt, Delivery, Endpoint
from .task import CallbackTask

log = logging.getLogger(__name__)

# SQS never delivers before the delay it was given; this covers clocks a little apart.
EARLY_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class Claim:
    delivery: Delivery
    endpoint: Endpoint


@dataclass(frozen=True)
class Busy:
    """The endpoint has CALLBACK_ENDPOINT_CONCURRENCY deliveries in flight."""


# --- decisions: what becomes of a delivery after an attempt --------------------------------
@dataclass(frozen=True)
class Done:
    outcome: str = "succeeded"


@dataclass(frozen=True)
class RetryIn:
    seconds: int
    outcome: str = "retrying"


@dataclass(frozen=True)
class GiveUp:
    why: str
    outcome: str = "failed"


def decide(result: sender.Outcome, attempt: int, schedule: list[int]) -> Done | RetryIn | GiveUp:
    if result.succeeded:
        return Done()
    if not result.retryable:
        return GiveUp(result.error)
    if attempt <= len(schedule):
        return RetryIn(schedule[attempt - 1])
    return GiveUp(f"{result.error}; no retries left after {attempt} attempts")


# --- the attempt --------------------------------------------------------------------------
def run(delivery_id: str) -> None:
    claim = take(delivery_id)
    if claim is None:
        log.info("callback task dropped: nothing to deliver", extra={"delivery_id": delivery_id})
        return
    if isinstance(claim, Busy):
        CallbackTask(delivery_id, settings.CALLBACK_BUSY_DELAY_SECONDS).publish()
        return
    delivery, endpoint = claim.delivery, claim.endpoint
    started = timezone.now()
    if not endpoint.enabled:
        result = sender.Outcome(False, False, error=f"the endpoint is disabled: {endpoint.disabled_reason or 'by its owner'}")
    else:
        body = body_of(delivery.payload)
        headers = signing.headers(delivery.event_id, body, signing.live_secrets(endpoint), started)
        headers["webhook-attempt"] = str(delivery.attempts)
        result = sender.post(endpoint.url, headers, body)
    decision = decide(result, delivery.attempts, settings.CALLBACK_RETRY_SCHEDULE)
    carry_out(claim, result, decision, started)


def take(delivery_id: str) -> Claim | Busy | None:
    """One conditional UPDATE: this delivery, if it is due (or a dead worker's lease ran out) and
    its endpoint has fewer than CALLBACK_ENDPOINT_CONCURRENCY in flight. No lock is held past
    the statement, so claims of one endpoint do not queue behind each other (claims racing in
    the same instant may each see one place left: the bound is exceeded by at most those)."""
    now = timezone.now()
    claimable = Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now + EARLY_TOLERANCE) | Q(
        status=Delivery.Status.DELIVERING, lease_expires_at__lt=now
    )
    in_flight = (
        Delivery.objects.filter(endpoint_id=OuterRef("endpoint_id"), status=Delivery.Status.DELIVERING, lease_expires_at__gte=now)
        .order_by()
        .values("endpoint_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    claimed = (
        Delivery.objects.filter(claimable, pk=delivery_id)
        .alias(in_flight=Coalesce(Subquery(in_flight), 0))
        .filter(in_flight__lt=settings.CALLBACK_ENDPOINT_CONCURRENCY)
        .update(
            status=Delivery.Status.DELIVERING,
            attempts=F("attempts") + 1,
            lease_expires_at=now + timedelta(seconds=settings.CALLBACK_LEASE_SECONDS),
            updated_at=now,
        )
    )
    if not claimed:
        # Busy if it could have been claimed but for the bound; else done, not yet due (a
        # duplicate task), held by another worker, or gone with its endpoint.
        return Busy() if Delivery.objects.filter(claimable, pk=delivery_id).exists() else None
    delivery = Delivery.objects.select_related("endpoint").get(pk=delivery_id)
    return Claim(delivery, delivery.endpoint)


def carry_out(claim: Claim, result: sender.Outcome, decision: Done | RetryIn | GiveUp, started) -> None:
    delivery = claim.delivery
    now = timezone.now()
    fields = {"lease_expires_at": None, "updated_at": now, "last_error": result.error[:1000]}
    queued_here = False
    if isinstance(decision, Done):
        fields["status"] = Delivery.Status.SUCCEEDED
    elif isinstance(decision, RetryIn):
        queued_here = decision.seconds <= settings.SQS_MAX_DELAY_SECONDS
        fields.update(
            status=Delivery.Status.PENDING,
            next_attempt_at=now + timedelta(seconds=decision.seconds),
            queued_at=now if queued_here else None,  # else held here, released by housekeeping
        )
    else:
        fields["status"] = Delivery.Status.FAILED
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery,
            number=delivery.attempts,
            started_at=started,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response_excerpt=result.excerpt,
            error=result.error[:1000],
            outcome=decision.outcome,
        )
        ours = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.DELIVERING, attempts=delivery.attempts).update(
            **fields
        )
        if claim.endpoint.enabled:
            _note_health(claim.endpoint, succeeded=isinstance(decision, Done), error=result.error, now=now)
    log.info(
        "callback attempt",
        extra={
            "delivery_id": str(delivery.pk),
            "attempt": delivery.attempts,
            "outcome": decision.outcome,
            "status_code": result.status_code,
            "error": result.error[:200],
        },
    )
    if ours and queued_here:
        try:
            CallbackTask(str(delivery.pk), decision.seconds).publish()
        except Exception:
            Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING).update(queued_at=None)
            log.exception("could not publish a callback retry; housekeeping will", extra={"delivery_id": str(delivery.pk)})


def _note_health(endpoint: Endpoint, succeeded: bool, error: str, now) -> None:
    """A success ends a run of failures; a run longer than CALLBACK_DISABLE_AFTER_SECONDS
    disables the endpoint, with the reason its owner and the operator see."""
    endpoints = Endpoint.objects.filter(pk=endpoint.pk)
    if succeeded:
        endpoints.exclude(failing_since=None).update(failing_since=None)
        return
    endpoints.update(failing_since=Coalesce("failing_since", now))
    horizon = now - timedelta(seconds=settings.CALLBACK_DISABLE_AFTER_SECONDS)
    disabled = endpoints.filter(enabled=True, failing_since__lte=horizon).update(
        enabled=False,
        disabled_reason=f"every attempt failed for {settings.CALLBACK_DISABLE_AFTER_SECONDS // 3600} h; last: {error[:300]}",
        updated_at=now,
    )
    if disabled:
        log.warning("callback endpoint disabled: failing for too long", extra={"endpoint_id": str(endpoint.pk)})
