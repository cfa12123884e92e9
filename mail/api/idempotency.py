"""Idempotency-Key: a client's retries are safe. The same key from the same API key within 24 h
gets the first answer again and queues nothing; the same key with another body gets 409.

The record is written, and committed, before the message is accepted: the unique constraint then
lets exactly one of several concurrent requests with the same key through; the others see it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import exceptions, status

from ..models import IdempotencyRecord

if TYPE_CHECKING:
    from rest_framework.response import Response

HEADER = "HTTP_IDEMPOTENCY_KEY"
MAX_KEY_CHARS = 255
LIFETIME = timedelta(hours=24)
# A record still unanswered after this long belongs to a request that died mid-way: its key may
# be used again (if that request had queued its message, the retry queues a second one).
ABANDONED_AFTER = timedelta(minutes=2)


class IdempotencyConflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_conflict"


@dataclass
class Slot:
    """Either a stored answer to replay, or the record this request must complete."""

    replay: IdempotencyRecord | None = None
    record: IdempotencyRecord | None = None


def key_from(request) -> str | None:
    key = request.META.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_CHARS or not key.isprintable():
        raise exceptions.ValidationError({"Idempotency-Key": f"1-{MAX_KEY_CHARS} printable characters."})
    return key


def fingerprint(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def claim(api_key, key: str, request_fingerprint: str) -> Slot:
    now = timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                return Slot(record=IdempotencyRecord.objects.create(api_key=api_key, key=key, fingerprint=request_fingerprint))
        except IntegrityError:
            pass
        existing = IdempotencyRecord.objects.filter(api_key=api_key, key=key).first()
        if existing is None:
            continue  # removed in between (its request failed): try again
        unanswered = existing.status_code is None
        if existing.created_at < now - LIFETIME or (unanswered and existing.created_at < now - ABANDONED_AFTER):
            IdempotencyRecord.objects.filter(pk=existing.pk).delete()
            continue
        if existing.fingerprint != request_fingerprint:
            raise IdempotencyConflict("This Idempotency-Key was used with a different request body.")
        if unanswered:
            raise IdempotencyConflict("A request with this Idempotency-Key is still being processed; retry shortly.")
        return Slot(replay=existing)
    raise IdempotencyConflict("This Idempotency-Key is in use; retry shortly.")


def complete(record: IdempotencyRecord, status_code: int, body: dict, location: str) -> None:
    IdempotencyRecord.objects.filter(pk=record.pk).update(status_code=status_code, response_body=body, location=location)


def release(record: IdempotencyRecord) -> None:
    """The request failed without an answer worth keeping (e.g. 503): its key may be used again."""
    IdempotencyRecord.objects.filter(pk=record.pk, status_code=None).delete()


def purge_expired() -> int:
    return IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - LIFETIME).delete()[0]


def answer_once(request, respond) -> Response:
    """respond(), or with an Idempotency-Key seen before, the first request's answer again."""
    key = key_from(request)
    if key is None:
        return respond()
    slot = claim(request.auth, key, fingerprint(request.data))
    if slot.replay:
        # DRF's Response here, not with this module: housekeeping imports it for purge_expired, in
        # the callbacks' worker, where Response (DRF's serializers behind it, about 2 MB) would
        # serve nothing (docs/benchmarks.md, issue 21).
        from rest_framework.response import Response

        first = slot.replay
        headers = {"Idempotent-Replayed": "true", **({"Location": first.location} if first.location else {})}
        return Response(first.response_body, status=first.status_code, headers=headers)
    try:
        response = respond()
    except Exception:
        release(slot.record)
        raise
    complete(slot.record, response.status_code, response.data, response.get("Location", ""))
    return response
