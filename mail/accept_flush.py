"""What the API's concurrent accepts share (mail/coalescing.py): one look at the suppression lists
and the callback endpoints, one transaction for the rows, one SendMessageBatch per 10 tasks, for
every request the flush took (the SQL is mail/accept_sql.py's). Each request is still answered
for its own messages only (mail/accepting.py).

A request is refused whole, as before, if any of its messages has a suppressed recipient; its
rows are never written. Should the shared transaction fail on data (a constraint, a value the
database refuses), each request's rows are tried alone, so one request's bad row costs only that
request; should it fail for the database itself (down, the pool empty), every request hears that
error at once rather than wait for it again one by one. The rows are committed before the tasks are
published, so a worker always finds its row. Whatever a request could not have written, its
bodies already stored in S3 go too."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DataError, IntegrityError, transaction

from providers.base import OutboundMessage

from . import accept_sql, claim_check
from .callbacks import outbox
from .delivery_task import DeliveryTask
from .models import Message, MessageEvent
from .suppressions import refusal_for, wanted_for


@dataclass
class Acceptance:
    """One message on its way in: its row and first event (not yet saved) and its task."""

    message: Message
    event: MessageEvent
    task: DeliveryTask
    queue_bytes: int
    # The message, when its recipients must be checked against its team's suppression list
    # (None: the client overrode the list, or a sandbox key sent it).
    checked: OutboundMessage | None

    @property
    def held(self) -> bool:
        return self.message.status == Message.Status.SCHEDULED


@dataclass(eq=False)
class Request:
    """One API request's messages: one, or a batch's (whose refusals name the message's index)."""

    acceptances: list[Acceptance]
    in_batch: bool

    def __len__(self) -> int:
        return len(self.acceptances)


Outcome = dict[str, Exception] | Exception  # the publish errors by message id, or why nothing was kept


def flush(requests: list[Request]) -> list[Outcome]:
    """For each request: the errors of the tasks SQS did not take, by message id (empty: all
    queued), or the exception that kept the whole request out (a MessageRefused for a suppressed
    recipient, or the database's error)."""
    acceptances = [acceptance for request in requests for acceptance in request.acceptances]
    try:
        lookup = accept_sql.look(
            {pair for a in acceptances if a.checked for pair in wanted_for(a.checked, a.message.team_id)},
            {a.message.api_key_id for a in acceptances},
        )
    except Exception as error:  # the database did not answer: nobody's rows can be written
        discard_bodies(acceptances)
        return [error] * len(requests)
    outcomes: list[Outcome | None] = [_refusal(request, lookup.suppressed) for request in requests]
    writable = [index for index, outcome in enumerate(outcomes) if outcome is None]
    try:
        _record([acceptance for index in writable for acceptance in requests[index].acceptances], lookup.listening)
    except (DataError, IntegrityError) as error:
        # One request's rows, most likely: each is tried alone so they cost only their own.
        for index in writable:
            outcomes[index] = error if len(writable) == 1 else _record_alone(requests[index], lookup.listening)
    except Exception as error:  # the database itself (down, the pool empty): the same for all
        for index in writable:
            outcomes[index] = error
    for request, outcome in zip(requests, outcomes, strict=True):
        if outcome is not None:
            discard_bodies(request.acceptances)
    written = [index for index, outcome in enumerate(outcomes) if outcome is None]
    failures = DeliveryTask.publish_many([a.task for i in written for a in requests[i].acceptances if not a.held])
    for index in written:
        ids = (acceptance.task.message_id for acceptance in requests[index].acceptances)
        outcomes[index] = {message_id: failures[message_id] for message_id in ids if message_id in failures}
    return outcomes


def discard_bodies(acceptances: list[Acceptance]) -> None:
    for acceptance in acceptances:
        if claim_check.is_pointer(acceptance.task.payload):
            claim_check.discard(acceptance.task.message_id)


def _refusal(request: Request, suppressed: dict) -> Exception | None:
    """The request's refusal for its first message with a suppressed recipient, or None."""
    if suppressed:
        for position, acceptance in enumerate(request.acceptances):
            if acceptance.checked and (refusal := refusal_for(acceptance.checked, acceptance.message.team_id, suppressed)):
                return refusal.at(position) if request.in_batch else refusal
    return None


def _record(acceptances: list[Acceptance], listening: bool) -> None:
    if not acceptances:
        return
    if not listening:  # the usual case: two inserts, one round trip
        accept_sql.write([a.message for a in acceptances], [a.event for a in acceptances])
        return
    # An endpoint may want these events: the outbox needs the events' ids, in the same transaction.
    with transaction.atomic():
        Message.objects.bulk_create([a.message for a in acceptances])
        outbox.record(MessageEvent.objects.bulk_create([a.event for a in acceptances]))


def _record_alone(request: Request, listening: bool) -> Exception | None:
    try:
        _record(request.acceptances, listening)
    except Exception as error:  # this request's outcome, whatever it is
        return error
    return None
