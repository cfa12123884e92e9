"""The use cases: accept a message, deliver it. Views and tasks only call these."""

from __future__ import annotations

import enum
import logging
import math
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from providers.base import MessageRejected, OutboundMessage, ProviderError, ProviderLevelError, SendResult, TransientError
from providers.circuit import Admission, Breakers, DisabledBreakers, Outcome, build_breakers
from providers.circuit import State as CircuitState
from providers.registry import Provider, build_provider
from providers.webhooks import DeliveryEvent, EventType

from . import claim_check, queues
from .models import Message, MessageEvent, ProviderSetting, Suppression

log = logging.getLogger(__name__)

DELIVER_TASK = "mail.deliver"


class QueueUnavailable(Exception):
    """The queue did not take the message: it is not accepted (guarantee 1)."""


class TooLargeForQueue(Exception):
    def __init__(self, size: int, limit: int):
        super().__init__(f"the message needs {size} bytes in the queue; the limit is {limit}")
        self.size = size
        self.limit = limit
        self.index: int | None = None  # its position, in a batch


# --- accept ----------------------------------------------------------------------------------

@dataclass
class _Acceptance:
    """One message on its way in: its row and first event (not yet saved) and its task."""

    message: Message
    event: MessageEvent
    payload: dict
    delay_seconds: int
    queue_bytes: int

    @property
    def held(self) -> bool:
        return self.message.status == Message.Status.SCHEDULED


def accept_message(api_key, fields: dict) -> Message:
    """Record the message and queue its delivery; only a message SQS took is accepted.

    A send_at within SQS's 15-minute delay is an SQS delay; further ahead the message is held in
    the database (status scheduled) until release_scheduled queues it."""
    try:
        (outcome,) = accept_messages(api_key, [fields])
    except (TooLargeForQueue, RecipientsSuppressed, claim_check.StorageUnavailable) as exc:
        exc.index = None  # one message, not a batch's: no index to name
        raise
    if isinstance(outcome, QueueUnavailable):
        raise outcome
    return outcome


def accept_messages(api_key, fields_list: list[dict]) -> list[Message | QueueUnavailable]:
    """Accept several messages at once: one transaction for their rows, one SQS SendMessageBatch
    per 10 tasks. Each comes back as its Message (accepted) or as the QueueUnavailable that
    withdrew it, in order: SQS can take part of a batch, and what it took stays accepted.

    Raises TooLargeForQueue (with .index) before anything is written if one would not fit."""
    acceptances = []
    try:
        for index, fields in enumerate(fields_list):
            try:
                acceptances.append(_prepare(api_key, fields))
            except (TooLargeForQueue, RecipientsSuppressed, claim_check.StorageUnavailable) as exc:
                exc.index = index
                raise
        with transaction.atomic():
            Message.objects.bulk_create([a.message for a in acceptances])
            MessageEvent.objects.bulk_create([a.event for a in acceptances])
    except BaseException:
        # Nothing was accepted: the bodies already stored for it go too.
        for acceptance in acceptances:
            if claim_check.is_pointer(acceptance.payload):
                claim_check.discard(str(acceptance.message.id))
        raise

    # Published after the commit, so the worker always finds the row.
    tasks = [delivery_task(str(a.message.id), a.payload, delay_seconds=a.delay_seconds) for a in acceptances if not a.held]
    try:
        failures = queues.publish_in_batches(tasks) if tasks else {}
    except Exception as exc:  # before any batch went out (no queue URL, no connection)
        failures = {task.key: exc for task in tasks}
    outcomes: list[Message | QueueUnavailable] = []
    for acceptance in acceptances:
        message = acceptance.message
        error = failures.get(str(message.id))
        if error is not None and _withdraw(message.id, error):
            if claim_check.is_pointer(acceptance.payload):
                claim_check.discard(str(message.id))
            outcomes.append(QueueUnavailable(str(error)))
            continue
        log.info(
            "message scheduled" if acceptance.held else "message accepted",
            extra={
                "message_id": str(message.id),
                "api_key_prefix": api_key.prefix,
                "recipients": message.recipient_count,
                "queue_bytes": acceptance.queue_bytes,
                "outcome": "scheduled" if acceptance.held else "accepted",
                **({"send_at": message.send_at.isoformat()} if message.send_at else {}),
            },
        )
        outcomes.append(message)
    return outcomes


def _prepare(api_key, fields: dict) -> _Acceptance:
    fields = dict(fields)
    send_at = fields.pop("send_at", None)
    ignore_suppressions = fields.pop("ignore_suppressions", False)
    message_id = uuid.uuid4()
    outbound = OutboundMessage(message_id=str(message_id), **fields)
    if not ignore_suppressions:
        refuse_suppressed(outbound)
    payload = outbound.to_payload()
    size = queues.task_wire_size(delivery_task_args(str(message_id), payload))
    if size > settings.LARGE_MESSAGE_BYTES and claim_check.enabled():
        # Too big to travel comfortably in SQS: the body waits in S3, the task carries a pointer.
        payload = claim_check.store(str(message_id), payload)
        size = queues.task_wire_size(delivery_task_args(str(message_id), payload))
    if size > settings.SQS_MAX_MESSAGE_BYTES:
        raise TooLargeForQueue(size, settings.SQS_MAX_MESSAGE_BYTES)
    recipients = outbound.to + outbound.cc + outbound.bcc
    delay = _seconds_until(send_at)
    held = delay > settings.SQS_MAX_DELAY_SECONDS
    message = Message(
        id=message_id,
        api_key=api_key,
        status=Message.Status.SCHEDULED if held else Message.Status.QUEUED,
        from_email=outbound.sender.email,
        recipients=", ".join(address.email for address in recipients),
        recipient_count=len(recipients),
        subject=outbound.subject,
        send_at=send_at,
        scheduled_payload=payload if held else None,
    )
    notes = [f"for {send_at.isoformat()}"] if send_at else []
    if claim_check.is_pointer(payload):
        notes.append(f"body stored in S3 ({payload[claim_check.POINTER]['bytes']} bytes)")
    event = MessageEvent(
        message=message, type=MessageEvent.Type.SCHEDULED if held else MessageEvent.Type.QUEUED, detail="; ".join(notes)
    )
    return _Acceptance(message, event, payload, 0 if held else delay, size)


def _withdraw(message_id, error: Exception) -> bool:
    """Take back a message whose publish failed; False if it stands as accepted after all.

    Whatever failed (SQS down, credentials, a timeout), the message is withdrawn and the client
    hears 503 and may retry. Should SQS have stored the task after all (a timeout after it took
    the message), a worker that finds no row drops the task; one that has already claimed it
    proves the publish worked, so the message stands. One conditional write decides, and no claim
    can match a withdrawn row (a cascading delete would read first and delete after, with room
    for a claim in between)."""
    withdrawn = Message.objects.filter(pk=message_id, status=Message.Status.QUEUED, attempts=0).update(
        status=Message.Status.WITHDRAWN
    )
    if withdrawn:
        Message.objects.filter(pk=message_id).delete()
        log.error("queue refused message", extra={"message_id": str(message_id), "error": repr(error)})
        return True
    log.warning("publish reported an error but a worker already has the message", extra={"message_id": str(message_id)})
    return False


MAX_ADDRESS_LENGTH = 320  # Suppression.address's column


class RecipientsSuppressed(Exception):
    def __init__(self, by_field: dict[str, list[str]], suppressions: dict[str, Suppression]):
        self.by_field = by_field  # "to"/"cc"/"bcc" -> the suppressed addresses as the client gave them
        self.suppressions = suppressions  # by lower-case address
        self.index: int | None = None  # its position, in a batch
        super().__init__(f"suppressed recipients: {', '.join(a for group in by_field.values() for a in group)}")


def refuse_suppressed(message: OutboundMessage) -> None:
    """Refuse mail to an address that hard-bounced or complained (on any API key's mail: the
    provider accounts and their reputation are shared). The client may override it per message."""
    by_field = {"to": message.to, "cc": message.cc, "bcc": message.bcc}
    wanted = {address.email.lower() for group in by_field.values() for address in group}
    found = {s.address: s for s in Suppression.objects.filter(address__in=wanted)}
    if found:
        refused = {name: [a.email for a in group if a.email.lower() in found] for name, group in by_field.items()}
        raise RecipientsSuppressed({name: addresses for name, addresses in refused.items() if addresses}, found)


def suppress_if_final(event: DeliveryEvent, message_id) -> bool:
    """Remember the recipient of a hard bounce or a complaint; True when newly suppressed."""
    if event.type is EventType.COMPLAINED:
        reason = Suppression.Reason.COMPLAINT
    elif event.type is EventType.BOUNCED and event.permanent:
        reason = Suppression.Reason.HARD_BOUNCE
    else:
        return False
    if not event.recipient or len(event.recipient) > MAX_ADDRESS_LENGTH:
        return False  # nothing to remember, or no address anyone could send to (RFC 5321: 254)
    _, created = Suppression.objects.get_or_create(
        address=event.recipient.lower(),
        defaults={"reason": reason, "provider": event.provider, "message_id": message_id, "detail": event.detail},
    )
    if created:
        log.info("recipient suppressed", extra={"message_id": str(message_id), "reason": reason, "provider": event.provider})
    return created


def _seconds_until(moment) -> int:
    return max(0, math.ceil((moment - timezone.now()).total_seconds())) if moment else 0


def release_scheduled() -> int:
    """Queue the scheduled messages whose send_at is within SQS's delay; return how many.

    Each is switched to queued by one conditional UPDATE before its task is published, so two
    processes releasing at once cannot both publish it; a refused publish puts it back."""
    released = 0
    horizon = timezone.now() + timedelta(seconds=settings.SQS_MAX_DELAY_SECONDS)
    due = Message.objects.filter(status=Message.Status.SCHEDULED, send_at__lte=horizon).values_list("pk", "send_at", "scheduled_payload")
    for message_id, send_at, payload in due[:500]:
        if not Message.objects.filter(pk=message_id, status=Message.Status.SCHEDULED).update(status=Message.Status.QUEUED):
            continue  # released or canceled meanwhile
        try:
            publish_delivery(str(message_id), payload, delay_seconds=_seconds_until(send_at))
        except Exception:
            Message.objects.filter(pk=message_id, status=Message.Status.QUEUED, attempts=0).update(status=Message.Status.SCHEDULED)
            log.exception("could not release a scheduled message; it stays scheduled", extra={"message_id": str(message_id)})
            continue
        with transaction.atomic():
            Message.objects.filter(pk=message_id).update(scheduled_payload=None)
            MessageEvent.objects.create(message_id=message_id, type=MessageEvent.Type.RELEASED)
        released += 1
    return released


class NotCancelable(Exception):
    def __init__(self, status: str):
        super().__init__(f"the message is {status}; only a scheduled or queued message no worker has taken can be canceled")
        self.status = status


def cancel_message(message: Message) -> None:
    """Cancel a message no worker has claimed yet. Its task, if queued, finds it canceled and
    does nothing."""
    now = timezone.now()
    with transaction.atomic():
        canceled = Message.objects.filter(
            pk=message.pk, status__in=(Message.Status.SCHEDULED, Message.Status.QUEUED), attempts=0
        ).update(status=Message.Status.CANCELED, scheduled_payload=None, updated_at=now)
        if canceled:
            MessageEvent.objects.create(message=message, type=MessageEvent.Type.CANCELED)
    if not canceled:
        message.refresh_from_db()
        raise NotCancelable(message.status)
    if claim_check.enabled():
        claim_check.discard(str(message.pk))  # its body, if it was large enough to be stored


def delivery_task_args(message_id: str, payload: dict, provider: str | None = None) -> list:
    """The delivery task's arguments: plain data only, the provider by name (None: the first)."""
    return [message_id, payload, provider]


def delivery_task_options(message_id: str, provider: str | None) -> dict:
    """Options every publish of the delivery task carries, Celery's retries included."""
    return {
        "queue": settings.SQS_QUEUE_NAME,
        # Celery would copy a repr of the arguments (the mail itself) into the headers, where it
        # shows in logs and the DLQ and, escaped, makes the queue message unpredictably larger.
        "argsrepr": repr([message_id, provider]),
        "kwargsrepr": "{}",
    }


def delivery_task(
    message_id: str,
    payload: dict,
    provider: str | None = None,
    *,
    step: int = 0,
    recheck: bool = False,
    only: bool = False,
    delay_seconds: int = 0,
    retries: int = 0,
) -> queues.TaskToPublish:
    return queues.TaskToPublish(
        key=message_id,
        name=DELIVER_TASK,
        args=delivery_task_args(message_id, payload, provider),
        # only: this provider or none (it waits for its circuit rather than skip to the next).
        kwargs={"step": step, "recheck": recheck, **({"only": True} if only else {})},
        options={
            "retries": retries,
            # A wait held by SQS, not by a worker (DESIGN §3: an ETA past the visibility timeout runs twice).
            "delay_seconds": delay_seconds,
            **delivery_task_options(message_id, provider),
        },
    )


def publish_delivery(message_id: str, payload: dict, provider: str | None = None, **options) -> None:
    """Publish one delivery task now; options as delivery_task's."""
    queues.publish(delivery_task(message_id, payload, provider, **options))


# --- deliver ---------------------------------------------------------------------------------

class DeliveryFailed(Exception):
    """Every provider is exhausted. Raised on the attempt that failed the message and on each
    redelivery of its task, so the task is never acked and the redrive policy moves it to the
    dead-letter queue (guarantee 7)."""


class Claim(enum.Enum):
    CLAIMED = "claimed"
    DONE = "done"  # sent (or further along), canceled or withdrawn: ack, send nothing
    FAILED = "failed"  # this task failed the message: keep raising until SQS dead-letters it
    BUSY = "busy"  # another worker's claim is live
    SUPERSEDED = "superseded"  # a later step has been reached: this task is a late duplicate
    MISSING = "missing"  # no such message (its publish was reported as failed)


def claim_message(message_id: str, step: int, recheck: bool = False) -> tuple[Claim, Message | None]:
    """Atomically take the message for sending at this step, or say why not (guarantee 4).

    A single conditional UPDATE: of two workers holding tasks for the same message, one matches.
    A claim whose lease has run out belonged to a worker that died; it can be taken over. The
    claim moves the row to the task's step, so tasks of earlier steps no longer match. The new
    `attempts` is the claim's token: every later write of this worker matches it, so a worker
    whose lease ran out cannot overwrite the claim of the one that took over. A recheck task
    (see BUSY in deliver_message) may only take over a dead worker's claim."""
    for _ in range(2):
        now = timezone.now()
        expired_claim = Q(status=Message.Status.SENDING, lease_expires_at__lt=now)
        claimable = expired_claim if recheck else Q(status=Message.Status.QUEUED) | expired_claim
        claimed = Message.objects.filter(claimable, pk=message_id, step__lte=step).update(
            status=Message.Status.SENDING,
            step=step,
            lease_expires_at=now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS),
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        message = Message.objects.filter(pk=message_id).first()
        if claimed:
            return Claim.CLAIMED, message
        if message is None:
            return Claim.MISSING, None
        if message.step > step:
            return Claim.SUPERSEDED, message
        if message.status == Message.Status.SENDING:
            return Claim.BUSY, message
        if message.status == Message.Status.FAILED:
            return Claim.FAILED, message
        if message.status == Message.Status.QUEUED and recheck:
            return Claim.SUPERSEDED, message  # the holder handed it on: its next task is queued
        if message.status != Message.Status.QUEUED:
            return Claim.DONE, message
        # Queued again between the UPDATE and the read (its holder let go): try once more.
    return Claim.BUSY, message


# A sent message stays sent; these may still become sent (a failed one, when a worker whose
# lease ran out turns out to have sent it after all).
NOT_YET_SENT = (Message.Status.QUEUED, Message.Status.SENDING, Message.Status.FAILED)

_providers: dict[str, Provider] = {}


def provider_named(name: str) -> Provider:
    # One instance per process, so its HTTP connection pool is reused across messages.
    if name not in _providers:
        _providers[name] = build_provider(name, settings)
    return _providers[name]


_breakers: Breakers | DisabledBreakers | None = None
HALF_OPEN_RECHECK_SECONDS = 5


def breakers() -> Breakers | DisabledBreakers:
    """The providers' circuit breakers, built on first use: in a forked worker, after the fork."""
    global _breakers
    if _breakers is None:
        _breakers = build_breakers(settings)
    return _breakers


_order_cache: tuple[float, list[str]] = (0.0, [])


def provider_order() -> list[str]:
    """The enabled providers, first choice first: the admin's switches over MAIL_PROVIDERS,
    read at most PROVIDER_SETTINGS_CACHE_SECONDS ago, so a switch applies without a restart."""
    global _order_cache
    expires, order = _order_cache
    if time.monotonic() < expires:
        return order
    switches = list(ProviderSetting.objects.all())
    switched = {switch.name for switch in switches}
    order = [s.name for s in switches if s.enabled] + [name for name in settings.MAIL_PROVIDERS if name not in switched]
    _order_cache = (time.monotonic() + settings.PROVIDER_SETTINGS_CACHE_SECONDS, order)
    return order


def provider_health() -> dict:
    """Each configured provider's circuit as the workers share it (or as this process alone sees
    it, without REDIS_URL), for the operator."""
    rows = []
    for name in settings.MAIL_PROVIDERS:
        circuit = breakers().read(name)
        calls, failures, slow = circuit.window()
        rows.append(
            {
                "name": name,
                "circuit": circuit.state.value,
                "since": datetime.fromtimestamp(circuit.changed_at, tz=dt_timezone.utc) if circuit.changed_at else None,
                "reason": circuit.reason,
                "until": datetime.fromtimestamp(circuit.until, tz=dt_timezone.utc) if circuit.state is not CircuitState.CLOSED else None,
                "calls": calls,
                "failures": failures,
                "slow": slow,
            }
        )
    return {"providers": rows, "shared": breakers().shared, "enabled": settings.BREAKER_ENABLED}


def provider_after(name: str) -> str | None:
    order = provider_order()
    position = order.index(name) if name in order else len(order)
    return order[position + 1] if position + 1 < len(order) else None


def retry_delay(retries_done: int, retry_after: float | None = None) -> int:
    """Seconds before the next attempt: exponential backoff with equal jitter (never zero, so
    retries of many messages spread out), or Retry-After when longer."""
    ceiling = settings.DELIVERY_RETRY_BASE_SECONDS * 2**retries_done
    delay = max(random.uniform(ceiling / 2, ceiling), retry_after or 0)
    return min(math.ceil(delay), settings.SQS_MAX_DELAY_SECONDS)


def deliver_message(
    message_id: str,
    payload: dict,
    provider_name: str | None = None,
    retries_done: int = 0,
    step: int = 0,
    recheck: bool = False,
    only: bool = False,
) -> None:
    """One attempt to send the message through one provider (the first in MAIL_PROVIDERS unless
    named). Returns when the task may be acked; raises TransientError when the same provider
    should be tried again after error.retry_in seconds (Celery publishes that retry, for the
    next step), DeliveryFailed when nothing is left."""
    claim, message = claim_message(message_id, step, recheck)
    if claim is Claim.MISSING:
        log.warning("no such message; dropping its task", extra={"message_id": message_id})
        return
    if claim is Claim.DONE:
        log.info("message already sent or canceled; not sending", extra={"message_id": message_id, "status": message.status})
        return
    if claim is Claim.SUPERSEDED:
        log.info("a later step of this message has been reached; dropping a late task", extra={"message_id": message_id, "step": step})
        return
    if claim is Claim.FAILED:
        log.info("message has failed; not sending a redelivery, which stays in SQS until its DLQ", extra={"message_id": message_id})
        raise DeliveryFailed(f"{message_id} has failed: {message.last_error}")
    order = provider_order()
    if claim is Claim.CLAIMED and not order:
        # Every provider is switched off: the mail waits in SQS, it does not fail.
        if _hold(message_id, message.attempts, payload, step, delay_seconds=settings.NO_PROVIDER_RECHECK_SECONDS):
            log.warning("every provider is switched off; holding the message in the queue", extra={"message_id": message_id})
        return
    if provider_name not in order:
        # None (the first provider), or one switched off since this task was queued.
        provider_name = order[0] if order else provider_name
    if claim is Claim.BUSY:
        # A duplicate of a task another worker is running (or ran and died in). Acking it could
        # lose the message if that worker died before sending; holding it burns SQS receives.
        # So a recheck waits in SQS until the claim has expired, and this copy is acked.
        wait = (message.lease_expires_at - timezone.now()).total_seconds() + 1
        publish_delivery(
            message_id, payload, provider_name, step=step, recheck=True, only=only, delay_seconds=max(1, math.ceil(wait)), retries=retries_done
        )
        log.info("message is being sent by another worker; checking again later", extra={"message_id": message_id})
        return

    token = message.attempts
    # The claim is committed; what follows until the `sent` write (a stored body from S3, the
    # circuit's admission, the provider) holds no connection from the pool.
    _release_database_connection()
    try:
        body = claim_check.load(payload)
    except claim_check.StorageUnavailable as error:
        # Our storage, not a provider: nothing counts against one, and the message waits in SQS.
        delay = retry_delay(0)
        note = f"{error}; trying again in {delay} s (SQS delay)"
        _hold(
            message_id, token, payload, step, provider=provider_name, only=only, delay_seconds=delay, retries=retries_done, event=(MessageEvent.Type.ERROR, note)
        )
        log.warning("could not read a stored message body", extra={"message_id": message_id}, exc_info=True)
        return
    except claim_check.BodyMissing as error:
        if fail_message(message_id, token, ProviderError(provider_name, str(error)), "nothing left to send"):
            raise DeliveryFailed(f"{message_id}: {error}")
        return
    try:
        outbound = OutboundMessage.from_payload(message_id, body)
    except Exception as error:
        _crashed(message_id, token, provider_name, error)
        raise
    candidates = order[order.index(provider_name):]
    if retries_done or only:
        # A retry's count belongs to its provider. If that one's circuit is open now, the message
        # is handed on as a failover, so that the next provider starts with retries of its own.
        # A task for one provider only waits for it.
        candidates = candidates[:1]
    admitted = _first_admitted(message_id, candidates)
    if admitted is None:
        next_provider = provider_after(provider_name) if retries_done and not only else None
        if next_provider is None:
            _wait_for_a_circuit(message_id, token, payload, step, provider_name, retries_done, candidates, only)
        elif _hold(message_id, token, payload, step + 1, provider=next_provider, delay_seconds=0):
            log.info("circuit open; handing the message on", extra={"message_id": message_id, "provider": provider_name, "outcome": "skipped", "next": next_provider})
        return
    provider_name, admission = admitted
    try:
        result = _send(provider_name, admission, outbound)
    except TransientError as error:
        if retries_done < settings.DELIVERY_MAX_RETRIES:
            error.retry_in = retry_delay(retries_done, error.retry_after)
            note = f"retry {retries_done + 1} of {settings.DELIVERY_MAX_RETRIES} in {error.retry_in} s (SQS delay)"
            if release_claim(message_id, token, error, MessageEvent.Type.RETRY_SCHEDULED, note):
                raise
            return
        fail_over(message_id, token, step, payload, error, f"{settings.DELIVERY_MAX_RETRIES} retries exhausted")
    except (ProviderLevelError, MessageRejected) as error:
        fail_over(message_id, token, step, payload, error, "not retried: the next provider may accept it")
    except Exception as error:
        _crashed(message_id, token, provider_name, error)
        raise
    else:
        mark_sent(message_id, token, message.lease_expires_at, result)
        if claim_check.is_pointer(payload):
            claim_check.discard(message_id)


def _release_database_connection() -> None:
    """Hand this thread's connection back to the pool between database steps that have slow I/O
    in between (an S3 read, the provider's hundred milliseconds or more): a worker's 64 sends in
    flight then share a pool of DATABASE_POOL_SIZE. The next statement takes one again. Without a
    pool the connection is kept, as reopening it would cost more than it saves."""
    if "pool" in connection.settings_dict.get("OPTIONS", {}) and not connection.in_atomic_block:
        connection.close()


def _crashed(message_id: str, token: int, provider_name: str, error: Exception) -> None:
    """A fault of ours, not the provider's: the task fails un-acked, SQS hands it out again, and
    after SQS_MAX_RECEIVE_COUNT receives it is dead-lettered for an operator to look at."""
    log.exception("delivery crashed", extra={"message_id": message_id, "provider": provider_name})
    release_claim(message_id, token, ProviderError(provider_name, f"internal error: {error!r}"), MessageEvent.Type.ERROR, "the task will be redelivered")


def _first_admitted(message_id: str, candidates: list[str]) -> tuple[str, Admission] | None:
    """The first of these providers whose circuit lets a send through, each one skipped on the
    way recorded in the message's history; None when every circuit is open."""
    for name in candidates:
        admission, circuit = breakers().admit(name)
        if admission is not Admission.REFUSED:
            return name, admission
        MessageEvent.objects.create(
            message_id=message_id,
            type=MessageEvent.Type.SKIPPED,
            provider=name,
            detail=f"skipped {name}: circuit open ({circuit.reason}) until {_clock_time(circuit.until)}",
        )
    return None


def _send(provider_name: str, admission: Admission, outbound: OutboundMessage) -> SendResult:
    """Send through the provider and tell its circuit how that went. A message the provider
    refused says nothing against the provider; a fault of ours says nothing at all."""
    started = time.monotonic()

    def report(ok: bool, retry_after: float | None = None) -> None:
        breakers().record(provider_name, admission, Outcome(ok=ok, latency=time.monotonic() - started, retry_after=retry_after))

    try:
        result = provider_named(provider_name).send(outbound)
    except TransientError as error:
        report(False, error.retry_after if error.status_code == 429 else None)
        raise
    except ProviderLevelError:
        report(False)
        raise
    except MessageRejected as error:
        if error.status_code is not None:
            report(True)  # the provider answered: it is up
        else:
            breakers().release(provider_name, admission)  # refused before any request: nothing learned
        raise
    except Exception:
        breakers().release(provider_name, admission)
        raise
    report(True)
    return result


def _wait_for_a_circuit(
    message_id: str, token: int, payload: dict, step: int, provider: str, retries_done: int, candidates: list[str], only: bool
) -> None:
    """Every provider left for this message is open: wait in SQS until the first may take a probe,
    rather than spend retries on providers known to be down or fail the message."""
    # An open circuit takes a probe at `until`; a half-open one is being probed now, and its
    # verdict may come long before its lease (`until`) ends: look again soon.
    now = time.time()
    reopens = min(c.until if c.state is CircuitState.OPEN else now + HALF_OPEN_RECHECK_SECONDS for c in map(breakers().read, candidates))
    delay = min(max(1, math.ceil(reopens - now)), settings.SQS_MAX_DELAY_SECONDS)
    note = f"the circuit of every provider left for it is open ({', '.join(candidates)}); trying again in {delay} s (SQS delay)"
    _hold(
        message_id, token, payload, step, provider=provider, only=only, delay_seconds=delay, retries=retries_done, event=(MessageEvent.Type.WAITING, note)
    )


def _hold(
    message_id: str,
    token: int,
    payload: dict,
    step: int,
    *,
    provider: str | None = None,
    only: bool = False,
    delay_seconds: int,
    retries: int = 0,
    event=None,
) -> bool:
    """Give the claim back untouched and have a task of `step` for `provider` (None: the first)
    look again after the delay, kept by SQS."""
    with transaction.atomic():
        held = Message.objects.filter(pk=message_id, status=Message.Status.SENDING, attempts=token).update(
            status=Message.Status.QUEUED, lease_expires_at=None, updated_at=timezone.now()
        )
        if held and event:
            MessageEvent.objects.create(message_id=message_id, type=event[0], detail=event[1])
    if held:
        publish_delivery(message_id, payload, provider, step=step, only=only, delay_seconds=delay_seconds, retries=retries)
    return bool(held)


def _clock_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=dt_timezone.utc).strftime("%H:%M:%S UTC")


def fail_over(message_id: str, token: int, step: int, payload: dict, error: ProviderError, why: str) -> None:
    """Hand the message to the next provider, or fail it when there is none (DESIGN §3.6-7)."""
    next_provider = provider_after(error.provider)
    if next_provider is None:
        passed_over = _skipped_and_never_tried(message_id, error.provider)
        if passed_over is None:
            if fail_message(message_id, token, error, why):
                raise DeliveryFailed(f"{message_id}: every provider is exhausted; last: {error}")
            return
        # Skipped while its circuit was open, so not exhausted: it gets its turn (waiting for its
        # circuit if need be) before the message may fail.
        note = f"{why}; now {passed_over}, skipped earlier while its circuit was open"
        if release_claim(message_id, token, error, MessageEvent.Type.FAILOVER, note):
            circuit = breakers().read(passed_over)
            wait = max(0, math.ceil(circuit.until - time.time())) if circuit.state is CircuitState.OPEN else 0
            publish_delivery(message_id, payload, passed_over, step=step + 1, only=True, delay_seconds=min(wait, settings.SQS_MAX_DELAY_SECONDS))
        return
    if release_claim(message_id, token, error, MessageEvent.Type.FAILOVER, f"{why}; now {next_provider}"):
        # Published before this task returns and is acked: a crash in between leaves both tasks,
        # and the claim lets only one of them send.
        publish_delivery(message_id, payload, next_provider, step=step + 1)


def _skipped_and_never_tried(message_id: str, failing_provider: str) -> str | None:
    """The first provider this message skipped for an open circuit and never sent to since."""
    skipped, tried = set(), {failing_provider}
    for event_type, provider in MessageEvent.objects.filter(message_id=message_id).values_list("type", "provider"):
        if event_type == MessageEvent.Type.SKIPPED:
            skipped.add(provider)
        elif event_type in (MessageEvent.Type.RETRY_SCHEDULED, MessageEvent.Type.FAILOVER, MessageEvent.Type.ERROR):
            tried.add(provider)
    return next((name for name in provider_order() if name in skipped - tried), None)


def _event_for(message_id: str, event_type: str, error: ProviderError, note: str) -> MessageEvent:
    return MessageEvent(
        message_id=message_id,
        type=event_type,
        provider=error.provider,
        status_code=error.status_code,
        detail=f"{error.kind}: {error.reason} — {note}",
    )


def _end_claim(message_id: str, token: int, status: str, error: ProviderError, event_type: str, note: str) -> bool:
    """Leave the claim with the message in `status`; False when the claim is no longer ours."""
    now = timezone.now()
    with transaction.atomic():
        ours = Message.objects.filter(pk=message_id, status=Message.Status.SENDING, attempts=token).update(
            status=status, lease_expires_at=None, last_error=str(error), updated_at=now
        )
        if ours:
            _event_for(message_id, event_type, error, note).save()
    if not ours:
        log.error("the claim was taken over while sending; leaving the message to its new holder", extra={"message_id": message_id})
    return bool(ours)


def release_claim(message_id: str, token: int, error: ProviderError, event_type: str, note: str) -> bool:
    """Give the claim back (the message waits for its next task) and record why."""
    released = _end_claim(message_id, token, Message.Status.QUEUED, error, event_type, note)
    if released:
        log.warning(
            "send attempt failed",
            extra={"message_id": message_id, "provider": error.provider, "error_kind": error.kind, "status_code": error.status_code, "outcome": event_type},
        )
    return released


def fail_message(message_id: str, token: int, error: ProviderError, why: str) -> bool:
    failed = _end_claim(message_id, token, Message.Status.FAILED, error, MessageEvent.Type.FAILED, f"{why}; no provider left")
    if failed:
        log.error("message failed: every provider exhausted", extra={"message_id": message_id, "provider": error.provider, "outcome": "failed"})
    return failed


def mark_sent(message_id: str, token: int, lease_expires_at, result: SendResult) -> None:
    """Record the send. A provider accepted the mail: that is a fact whatever became of the claim,
    so this write does not depend on it. A database outage is waited out while the claim still
    keeps other workers away; only past its lease would a redelivery send again."""
    delay = 0.5
    while True:
        try:
            _write_sent(message_id, token, result)
            break
        except (OperationalError, InterfaceError):
            if timezone.now() + timedelta(seconds=delay) >= lease_expires_at:
                raise
            log.warning("could not record a send; trying again", extra={"message_id": message_id}, exc_info=True)
            close_old_connections()
            time.sleep(delay)
            delay = min(delay * 2, 5)
    log.info(
        "message sent",
        extra={"message_id": message_id, "provider": result.provider, "provider_message_id": result.provider_message_id, "outcome": "sent"},
    )


# How far along a sent message is. A provider's event moves the status only further along this
# order: a late "delivered" after a "bounced" (events arrive out of order, and a message has
# several recipients) is recorded as an event and leaves the status as it is. A message not yet
# `sent` (an event faster than our own write) keeps its status until that write, which then
# catches up with the events already recorded.
STATUS_ORDER = [Message.Status.SENT, Message.Status.DELIVERED, Message.Status.BOUNCED, Message.Status.COMPLAINED]
STATUS_FOR_EVENT = {
    MessageEvent.Type.DELIVERED: Message.Status.DELIVERED,
    MessageEvent.Type.BOUNCED: Message.Status.BOUNCED,
    MessageEvent.Type.COMPLAINED: Message.Status.COMPLAINED,
}


def advance_status(message_id, event_type: str) -> bool:
    """One conditional UPDATE, so concurrent webhooks cannot move a status backwards."""
    target = STATUS_FOR_EVENT.get(event_type)
    if target is None:
        return False
    earlier = STATUS_ORDER[: STATUS_ORDER.index(target)]
    return bool(Message.objects.filter(pk=message_id, status__in=earlier).update(status=target, updated_at=timezone.now()))


def _write_sent(message_id: str, token: int, result: SendResult) -> None:
    now = timezone.now()
    sent = {
        "status": Message.Status.SENT,
        "provider": result.provider,
        "provider_message_id": result.provider_message_id,
        "lease_expires_at": None,
        "last_error": "",
        "sent_at": now,
        "updated_at": now,
    }
    with transaction.atomic():
        # The usual case, our claim still held, in one statement; else whatever became of it.
        claim_held = Message.objects.filter(pk=message_id, status=Message.Status.SENDING, attempts=token).update(**sent)
        if not claim_held:
            Message.objects.filter(pk=message_id, status__in=NOT_YET_SENT).update(**sent)
        MessageEvent.objects.create(message_id=message_id, type=MessageEvent.Type.SENT, provider=result.provider, status_code=result.status_code)
        for event_type in MessageEvent.objects.filter(message_id=message_id, type__in=STATUS_FOR_EVENT).values_list("type", flat=True):
            advance_status(message_id, event_type)  # the provider's webhook came first
    if not claim_held:
        log.error("sent after the claim was taken over: another worker may send it too", extra={"message_id": message_id})
