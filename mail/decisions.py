"""What a delivery attempt decided (mail/delivery.py decides), and `carry_out`, the one place that
acts on a decision: the claim's writes and events (mail/claims.py), the next task published
through DeliveryTask, the log line, the claim-check body's deletion.

Every decision that lets the task go on publishes its next task only after the claim's write
succeeded and before the current task is acked: a crash in between leaves two tasks, and the
claim lets only one of them send. Where the claim turned out to be another worker's, nothing
is published: that worker carries the message on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from providers.base import ProviderError, SendResult, TransientError

from . import claim_check, claims
from .claims import Claim
from .delivery_task import DeliveryTask
from .exceptions import DeliveryFailed
from .models import Message, MessageEvent

log = logging.getLogger("mail.delivery")


@dataclass(frozen=True)
class Drop:
    """Nothing to do: ack the task (the message is gone, done, or at a later step)."""

    why: str
    level: int = logging.INFO
    status: str = ""  # the message's, when it has one


@dataclass(frozen=True)
class Refuse:
    """The message has failed: raise on every redelivery, so SQS moves the task to the DLQ."""

    last_error: str


@dataclass(frozen=True)
class Recheck:
    """Another worker holds the claim. Acking this copy could lose the message if that worker
    died; holding it would burn SQS receives. So a recheck waits until the claim expires."""

    next: DeliveryTask


@dataclass(frozen=True)
class Hold:
    """Give the claim back untouched; the next task looks again after a wait kept by SQS (or, when
    a retry's provider opened its circuit, goes to the next provider at once)."""

    claim: Claim
    next: DeliveryTask
    why: str  # the log line
    outcome: str
    level: int = logging.INFO
    event: tuple[str, str] | None = None  # (type, detail) for the message's history
    fields: dict = field(default_factory=dict)  # the log line's, beyond the message id
    error: Exception | None = None  # what made it hold, for the log's traceback


@dataclass(frozen=True)
class Retry:
    """A transient failure: the same provider again after a wait kept by SQS."""

    claim: Claim
    error: TransientError
    next: DeliveryTask
    note: str


@dataclass(frozen=True)
class FailOver:
    """This provider is exhausted or refused the message: the next one takes over."""

    claim: Claim
    error: ProviderError
    next: DeliveryTask
    note: str


@dataclass(frozen=True)
class Fail:
    """No provider is left: the message fails, and its task goes on to the DLQ."""

    claim: Claim
    error: ProviderError
    why: str


@dataclass(frozen=True)
class Sent:
    claim: Claim
    result: SendResult
    body_stored: bool  # its body was kept in S3 for the queue's sake, and can go now
    # Set when no request was made: an ambiguous attempt the providers said they had accepted.
    resolved_by: str = ""


@dataclass(frozen=True)
class Crash:
    """A fault of ours, not the provider's: the task fails un-acked, SQS hands it out again, and
    after SQS_MAX_RECEIVE_COUNT receives it is dead-lettered for an operator to look at."""

    claim: Claim
    provider: str
    error: Exception


Decision = Drop | Refuse | Recheck | Hold | Retry | FailOver | Fail | Sent | Crash


def carry_out(task: DeliveryTask, decision: Decision) -> None:
    """Do what the decision says. Returns when the task may be acked; raises when it must not be."""
    ids = {"message_id": task.message_id}
    match decision:
        case Drop(why, level, status):
            log.log(level, why, extra={**ids, "step": task.step, **({"status": status} if status else {})})
        case Refuse(last_error):
            log.info("message has failed; not sending a redelivery, which stays in SQS until its DLQ", extra=ids)
            raise DeliveryFailed(f"{task.message_id} has failed: {last_error}")
        case Recheck(next_task):
            next_task.publish()
            log.info("message is being sent by another worker; checking again later", extra=ids)
        case Hold(claim, next_task, why, outcome, level, event, fields, error):
            if claims.give_back(claim, event):
                next_task.publish()
                extra = {
                    **ids,
                    "provider": next_task.provider,
                    "outcome": outcome,
                    "delay_seconds": next_task.delay_seconds,
                    **fields,
                }
                log.log(level, why, extra=extra, exc_info=error)
            else:
                _taken_over(task)
        case Retry(claim, error, next_task, note) | FailOver(claim, error, next_task, note):
            event = MessageEvent.Type.RETRY_SCHEDULED if isinstance(decision, Retry) else MessageEvent.Type.FAILOVER
            if claims.end(claim, Message.Status.QUEUED, error, event, note):
                next_task.publish()
                _attempt_failed(task, error, event, next_task)
            else:
                _taken_over(task)
        case Fail(claim, error, why):
            if not claims.end(claim, Message.Status.FAILED, error, MessageEvent.Type.FAILED, f"{why}; no provider left"):
                _taken_over(task)
                return
            log.error("message failed: every provider exhausted", extra={**ids, "provider": error.provider, "outcome": "failed"})
            raise DeliveryFailed(f"{task.message_id}: every provider is exhausted ({why}); last: {error}")
        case Sent(claim, result, body_stored, resolved_by):
            if not claims.record_sent(claim, result, resolved_by):
                log.error("sent after the claim was taken over: another worker may send it too", extra=ids)
            log.info(
                "ambiguous attempt resolved: the provider had accepted it" if resolved_by else "message sent",
                extra={
                    **ids,
                    "provider": result.provider,
                    "provider_message_id": result.provider_message_id,
                    # Sent either way, for the metrics that count sent mail from these lines.
                    "outcome": "sent",
                    **({"resolved_by": resolved_by} if resolved_by else {}),
                },
            )
            if body_stored:
                claim_check.discard(task.message_id)
        case Crash(claim, provider, error):
            log.error("delivery crashed", extra={**ids, "provider": provider}, exc_info=error)
            internal = ProviderError(provider, f"internal error: {error!r}")
            if claims.end(claim, Message.Status.QUEUED, internal, MessageEvent.Type.ERROR, "the task will be redelivered"):
                _attempt_failed(task, internal, MessageEvent.Type.ERROR, None)
            else:
                _taken_over(task)
            raise error


def _attempt_failed(task: DeliveryTask, error: ProviderError, outcome: str, next_task: DeliveryTask | None) -> None:
    log.warning(
        "send attempt failed",
        extra={
            "message_id": task.message_id,
            "provider": error.provider,
            "error_kind": error.kind,
            "status_code": error.status_code,
            "outcome": outcome,
            **({"next": next_task.provider, "delay_seconds": next_task.delay_seconds} if next_task else {}),
        },
    )


def _taken_over(task: DeliveryTask) -> None:
    log.error(
        "the claim was taken over while sending; leaving the message to its new holder", extra={"message_id": task.message_id}
    )
