"""One delivery attempt: claim the message, read its body, pick a provider whose circuit admits
it, send, and decide what follows. `deliver` decides; `mail.decisions.carry_out` acts. Two
writes happen on the way, as facts: the claim itself, and the providers skipped for their open
circuits.

Each task is one attempt through one provider, the first enabled one unless the task names
another. A transient failure (timeout, connection error, 429, 5xx) is retried on the same
provider, at most DELIVERY_MAX_RETRIES times, with the wait held by SQS; a provider-level or
message-level refusal, or retries exhausted, fails over to the next provider at once; with no
provider left the message fails. docs/architecture.md has the whole flow."""

from __future__ import annotations

import logging
import math

from django.conf import settings
from django.utils import timezone

from providers import sandbox
from providers.base import MessageRejected, OutboundMessage, ProviderError, ProviderLevelError, TransientError

from . import ambiguity, claim_check, claims, routing
from .claims import Claim, ClaimKind
from .connections import let_go_of_connection
from .decisions import Crash, Decision, Drop, Fail, FailOver, Hold, Recheck, Refuse, Retry, Sent, carry_out
from .delivery_task import DeliveryTask
from .exceptions import BodyMissing, StorageUnavailable
from .models import MessageEvent


def run(task: DeliveryTask) -> None:
    """The delivery task's body. Returns when the task may be acked; raises when it must not be
    (the message failed, or a fault of ours: SQS hands it out again, then dead-letters it)."""
    carry_out(task, deliver(task))


def deliver(task: DeliveryTask) -> Decision:
    claim = claims.take(task)
    if claim.kind is ClaimKind.MISSING:
        return Drop("no such message; dropping its task", logging.WARNING)
    if claim.kind is ClaimKind.DONE:
        return Drop("message already sent or canceled; not sending", status=claim.status)
    if claim.kind is ClaimKind.SUPERSEDED:
        return Drop("a later step of this message has been reached; dropping a late task")
    if claim.kind is ClaimKind.FAILED:
        return Refuse(claim.last_error)
    # A sandbox key's mail goes to the sandbox only, whatever the live providers' switches say.
    order = [sandbox.NAME] if claim.sandbox else routing.provider_order()
    if claim.kind is ClaimKind.CLAIMED and not order:
        # Every provider is switched off: the mail waits in SQS, it does not fail.
        next_task = task.again(settings.NO_PROVIDER_RECHECK_SECONDS, provider=None, only=False, retries=0)
        return Hold(claim, next_task, "every provider is switched off; holding the message in the queue", "held", logging.WARNING)
    # None (the first provider), or one switched off since this task was queued: the first.
    provider = task.provider if task.provider in order else (order[0] if order else task.provider)
    if claim.kind is ClaimKind.BUSY:
        wait = (claim.lease_expires_at - timezone.now()).total_seconds() + 1
        return Recheck(task.again(max(1, math.ceil(wait)), provider=provider, recheck=True))

    # The claim is committed; what follows until the claim's last write (a stored body from S3,
    # the circuit's admission, the provider) holds no connection from the pool.
    let_go_of_connection()
    try:
        body = claim_check.load(task.payload)
    except StorageUnavailable as error:
        # Our storage, not a provider: nothing counts against one, and the message waits in SQS.
        delay = routing.retry_delay(0)
        event = (MessageEvent.Type.ERROR, f"{error}; trying again in {delay} s (SQS delay)")
        why = "could not read a stored message body"
        return Hold(claim, task.again(delay, provider=provider), why, "error", logging.WARNING, event, error=error)
    except BodyMissing as error:
        return Fail(claim, ProviderError(provider, str(error)), "nothing left to send")
    try:
        outbound = OutboundMessage.from_payload(task.message_id, body)
    except Exception as error:  # an unreadable payload is a fault of ours
        return Crash(claim, provider, error)
    if claim.sandbox:
        return _sandbox_send(task, claim, outbound)
    if claim.ambiguous_since is not None:
        # An earlier attempt may have been accepted: ask before sending again (mail/ambiguity.py).
        resolved = ambiguity.resolve(task, claim, provider, outbound)
        if resolved is not None:
            return resolved
    return _send(task, claim, provider, order, outbound)


def _send(task: DeliveryTask, claim: Claim, provider: str, order: list[str], outbound: OutboundMessage) -> Decision:
    candidates = order[order.index(provider) :]
    if task.retries or task.only:
        # A retry's count belongs to its provider. If that one's circuit is open now, the message
        # is handed on as a failover, so that the next provider starts with retries of its own.
        # A task for one provider only waits for it.
        candidates = candidates[:1]
    admitted, skips = routing.admit_first(candidates)
    # Written now, not with the decision: should this attempt end in a crash or lose its claim,
    # a skipped provider must still get its turn before the message may fail.
    claims.record_skips(claim, skips)
    if admitted is None:
        return _every_circuit_open(task, claim, provider, candidates)
    provider, admission = admitted
    try:
        result = routing.send(provider, admission, outbound)
    except TransientError as error:
        if task.retries < settings.DELIVERY_MAX_RETRIES:
            delay = routing.retry_delay(task.retries, error.retry_after)
            note = f"retry {task.retries + 1} of {settings.DELIVERY_MAX_RETRIES} in {delay} s (SQS delay)"
            return Retry(claim, error, task.retry(error.provider, delay), note)
        return _fail_over(task, claim, error, f"{settings.DELIVERY_MAX_RETRIES} retries exhausted")
    except (ProviderLevelError, MessageRejected) as error:
        return _fail_over(task, claim, error, "not retried: the next provider may accept it")
    except Exception as error:
        return Crash(claim, provider, error)
    return Sent(claim, result, claim_check.is_pointer(task.payload))


def _sandbox_send(task: DeliveryTask, claim: Claim, outbound: OutboundMessage) -> Decision:
    """No circuit, no retries, nothing to ask after a crash: nothing is sent anywhere."""
    try:
        return Sent(claim, sandbox.SANDBOX.send(outbound), claim_check.is_pointer(task.payload))
    except MessageRejected as error:
        return Fail(claim, error, "the sandbox refused it, as its recipient asked")


def _every_circuit_open(task: DeliveryTask, claim: Claim, provider: str, candidates: list[str]) -> Decision:
    next_provider = routing.provider_after(provider) if task.retries and not task.only else None
    if next_provider is not None:
        next_task = task.next_step(next_provider)
        why = "circuit open; handing the message on"
        return Hold(claim, next_task, why, "skipped", fields={"provider": provider, "next": next_provider})
    # Rather than spend retries on providers known to be down, or fail the message: wait in SQS
    # until the first of them may take a probe.
    delay = routing.until_any_admits(candidates)
    detail = f"the circuit of every provider left for it is open ({', '.join(candidates)}); trying again in {delay} s (SQS delay)"
    why = "every circuit left for the message is open; waiting in the queue"
    return Hold(claim, task.again(delay, provider=provider), why, "waiting", event=(MessageEvent.Type.WAITING, detail))


def _fail_over(task: DeliveryTask, claim: Claim, error: ProviderError, why: str) -> Decision:
    """Hand the message to the next provider, or fail it when there is none."""
    next_provider = routing.provider_after(error.provider)
    if next_provider is not None:
        return FailOver(claim, error, task.next_step(next_provider), f"{why}; now {next_provider}")
    passed_over = routing.skipped_and_never_tried(task.message_id, error.provider)
    if passed_over is None:
        return Fail(claim, error, why)
    # Skipped while its circuit was open, so not exhausted: it gets its turn (waiting for its
    # circuit if need be) before the message may fail.
    next_task = task.next_step(passed_over, only=True, delay_seconds=routing.until_admits(passed_over))
    return FailOver(claim, error, next_task, f"{why}; now {passed_over}, skipped earlier while its circuit was open")
