"""Erasing one person from a team's data, on the team's request (POST /api/v1/erasures).

An erasure is a job: the request stores it (`request`) and the housekeeping command works through
it (`work`), a bounded batch of messages per run, until nothing of the team still holds the
address. For each message sent to or from it:

- mail not yet taken by a worker (scheduled, or queued and never tried) is canceled first, so the
  task in SQS, which holds the address, sends nothing; mail already on its way (being sent, or
  waiting for a retry) is left to finish and erased on a later run: the job stays pending;
- the row keeps its id, status, times and provider; its addresses become ERASED, its subject,
  tags and metadata (the content of mail to that person) are blanked;
- its events lose the address (their recipient, and wherever a provider's words quote it);
- its dead letters lose the task they kept (the mail itself), its S3 body is deleted, and so are
  its status callbacks (mail/callbacks/), delivered or not: their payloads name the address;
- rejected requests of the team's keys that quote the address are deleted from the archive (the
  caller supplies that step: the archive belongs to the API, mail/api/archive.py).

The suppression of the address is kept unless asked for: it is what keeps the team from mailing
the person again. A provider event that arrives later for an erased message is stored without the
address (mail/status.py stores no address a message was not sent to)."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import accepting, claim_check
from .callbacks.models import Delivery
from .exceptions import NotCancelable
from .models import DeadLetter, Erasure, Message, MessageEvent, Suppression
from .search import MessageFilters, messages

log = logging.getLogger(__name__)

ERASED = "[erased]"
IN_FLIGHT = (Message.Status.SCHEDULED, Message.Status.QUEUED, Message.Status.SENDING)

#: (the team's API key prefixes, the address) -> how many archived requests were deleted.
ArchiveEraser = Callable[[list[str], str], int]


def request(team_id: int, address: str, erase_suppression: bool, requested_by: str) -> Erasure:
    address = address.lower()
    return Erasure.objects.create(
        team_id=team_id,
        address=address,
        address_sha256=hashlib.sha256(address.encode()).hexdigest(),
        erase_suppression=erase_suppression,
        requested_by=requested_by,
    )


def work(erase_archived: ArchiveEraser | None = None) -> int:
    """One batch of every pending erasure; how many messages were erased."""
    erased = 0
    for erasure in Erasure.objects.filter(status=Erasure.Status.PENDING).order_by("requested_at"):
        erased += work_on(erasure, erase_archived)
    return erased


def work_on(erasure: Erasure, erase_archived: ArchiveEraser | None = None) -> int:
    """One batch of this erasure; it is done when no message of the team holds the address and
    none is on its way to it. An erased message no longer holds it, so the next batch goes on."""
    address = erasure.address
    holding = messages(erasure.team_id, MessageFilters(recipient=address)) | Message.objects.filter(
        team_id=erasure.team_id, from_email__iexact=address
    )
    batch = list(holding.order_by("created_at")[: settings.RETENTION_BATCH_SIZE])
    for message in batch:
        if accepting.cancelable(message):
            try:
                accepting.cancel(message, detail="its recipient's data was erased")
            except NotCancelable:
                pass  # a worker took it meanwhile: erased once it is done
    ready = list(Message.objects.filter(pk__in=[m.pk for m in batch]).exclude(status__in=IN_FLIGHT))
    for message in ready:
        _erase_message(message, address)
    Erasure.objects.filter(pk=erasure.pk).update(messages_erased=F("messages_erased") + len(ready))
    if len(batch) < settings.RETENTION_BATCH_SIZE and len(ready) == len(batch):
        _finish(erasure, erase_archived)
    return len(ready)


def _erase_message(message: Message, address: str) -> None:
    # The address as a whole: not the tail of joann@… when ann@… is erased, nor the head of ann@example.com.au.
    pattern = re.compile(rf"(?<![\w.+-]){re.escape(address)}(?![\w-]|\.\w)", re.IGNORECASE)
    with transaction.atomic():
        Message.objects.filter(pk=message.pk).update(
            from_email=ERASED if message.from_email.lower() == address else message.from_email,
            recipients=", ".join(_without(message.recipients.split(","), address)),
            recipient_addresses=[ERASED if entry == address else entry for entry in message.recipient_addresses],
            subject=ERASED,
            erased_at=timezone.now(),
            tags=[],
            metadata={},
            last_error=pattern.sub(ERASED, message.last_error),
            scheduled_payload=None,
        )
        for event in MessageEvent.objects.filter(message_id=message.pk).only("recipient", "detail"):
            if pattern.search(event.recipient) or pattern.search(event.detail):
                MessageEvent.objects.filter(pk=event.pk).update(
                    recipient=pattern.sub(ERASED, event.recipient), detail=pattern.sub(ERASED, event.detail)
                )
        # Its callbacks, sent or not: their payloads name the address, and the team asked for it gone.
        Delivery.objects.filter(message_id=message.pk).delete()
        for letter in DeadLetter.objects.filter(message_id=message.pk).only("reason"):
            DeadLetter.objects.filter(pk=letter.pk).update(task_args=None, raw_body="", reason=pattern.sub(ERASED, letter.reason))
    if claim_check.enabled():
        claim_check.discard(str(message.pk))


def _without(recipients: Iterable[str], address: str) -> list[str]:
    return [ERASED if entry.strip().lower() == address else entry.strip() for entry in recipients]


def _finish(erasure: Erasure, erase_archived: ArchiveEraser | None) -> None:
    if erase_archived is not None:
        prefixes = list(erasure.team.key_profiles.values_list("api_key__prefix", flat=True))
        erase_archived(prefixes, erasure.address)
    suppression_erased = False
    if erasure.erase_suppression:
        suppression_erased = bool(Suppression.objects.filter(team_id=erasure.team_id, address=erasure.address).delete()[0])
    Erasure.objects.filter(pk=erasure.pk).update(
        status=Erasure.Status.DONE, address="", suppression_erased=suppression_erased, finished_at=timezone.now()
    )
    log.info("erasure done", extra={"erasure_id": str(erasure.pk)})
