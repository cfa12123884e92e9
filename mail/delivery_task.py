"""The delivery task: one attempt to send one message, as it travels in SQS. This module is the
one place that knows its wire format; everything else holds a DeliveryTask.

On the wire (Celery's task protocol 2 through kombu's SQS transport; docs/architecture.md):

    task name   "mail.deliver"
    args        [message_id, payload, provider]      provider: a name, or null for the first
    kwargs      {"step": int, "recheck": bool}       and "only": true when set
    headers     retries: int                         Celery's own header
                argsrepr: "[message_id, provider]"   so the mail never shows in headers or logs
    SQS         DelaySeconds: delay_seconds

Tasks already queued when a new release starts are read by it, so a change to this format must
keep reading the old one (tests/test_delivery_task.py decodes tasks of the earlier format)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from django.conf import settings

from . import queues

TASK_NAME = "mail.deliver"


class UnreadableTask(Exception):
    """Something in the queue that is not a delivery task we can read."""


@dataclass(frozen=True)
class DeliveryTask:
    message_id: str
    # The mail (providers.base.OutboundMessage.to_payload()), or a pointer to it in S3 when it is
    # too large for the queue (mail/claim_check.py).
    payload: dict
    provider: str | None = None  # None: the first enabled provider
    # How far the delivery has gone: each retry, failover or requeue is the next step, and a task
    # of a step the message has passed is a late duplicate (mail/claims.py).
    step: int = 0
    retries: int = 0  # transient failures already retried on `provider`
    # Another worker held the claim when this task was published: it may only take over a claim
    # whose lease ran out.
    recheck: bool = False
    only: bool = False  # this provider or none: wait for its circuit rather than skip it
    delay_seconds: int = 0  # held by SQS before any worker receives it (at most 900)

    # --- what follows this task ------------------------------------------------------------
    def retry(self, provider: str, delay_seconds: int) -> DeliveryTask:
        """The same provider again after a transient failure."""
        return dataclasses.replace(
            self, provider=provider, step=self.step + 1, retries=self.retries + 1, recheck=False, delay_seconds=delay_seconds
        )

    def next_step(self, provider: str, *, only: bool = False, delay_seconds: int = 0) -> DeliveryTask:
        """Another provider, with retries of its own (a failover, or a hand-over past an open circuit)."""
        return dataclasses.replace(
            self, provider=provider, step=self.step + 1, retries=0, recheck=False, only=only, delay_seconds=delay_seconds
        )

    def again(self, delay_seconds: int, **changes) -> DeliveryTask:
        """This step once more, after a wait: a hold (a plain task), or with recheck=True a look at
        another worker's claim."""
        return dataclasses.replace(self, **{"recheck": False, **changes, "delay_seconds": delay_seconds})

    # --- the wire format --------------------------------------------------------------------
    @classmethod
    def received(cls, args: list, kwargs: dict, retries: int) -> DeliveryTask:
        """The task as Celery hands it to the worker (or as the drainer read it from the DLQ)."""
        try:
            message_id, payload, *rest = args
            provider = rest[0] if rest else None
            if not isinstance(payload, dict) or not (provider is None or isinstance(provider, str)):
                raise TypeError("expected [message_id, payload (an object), provider (a name or null)]")
            return cls(
                message_id=str(message_id),
                payload=payload,
                provider=provider,
                step=int(kwargs.get("step", 0)),
                retries=int(retries),
                recheck=bool(kwargs.get("recheck", False)),
                only=bool(kwargs.get("only", False)),
            )
        except (TypeError, ValueError) as exc:
            raise UnreadableTask(f"not a delivery task's arguments: {exc}") from exc

    @classmethod
    def from_sqs_body(cls, sqs_body: str) -> DeliveryTask:
        try:
            message = queues.read_celery_message(sqs_body)
        except queues.UnreadableMessage as exc:
            raise UnreadableTask(str(exc)) from exc
        if message.task_name != TASK_NAME:
            raise UnreadableTask(f"not a delivery task: {message.task_name or 'no task name'}")
        return cls.received(message.args, message.kwargs, message.retries)

    def args(self) -> list:
        return [self.message_id, self.payload, self.provider]

    def kwargs(self) -> dict:
        return {"step": self.step, "recheck": self.recheck, **({"only": True} if self.only else {})}

    def record(self) -> list:
        """As a dead letter keeps it (DeadLetter.task_args): the arguments, then the keyword arguments."""
        return [*self.args(), self.kwargs()]

    @classmethod
    def from_record(cls, record: list) -> DeliveryTask:
        # The arguments, then the keyword arguments when there are any (the provider is a name or
        # null, never an object, so a trailing object after the payload is the keyword arguments).
        has_kwargs = len(record) >= 3 and isinstance(record[-1], dict)
        args, kwargs = (record[:-1], record[-1]) if has_kwargs else (record, {})
        return cls.received(args, kwargs, retries=0)

    def wire_size(self) -> int:
        """An upper bound of its size in SQS, which takes at most SQS_MAX_MESSAGE_BYTES."""
        return queues.task_wire_size(self.args(), self.kwargs())

    def to_publish(self) -> queues.TaskToPublish:
        return queues.TaskToPublish(
            key=self.message_id,
            name=TASK_NAME,
            args=self.args(),
            kwargs=self.kwargs(),
            options={
                "queue": settings.SQS_QUEUE_NAME,
                "retries": self.retries,
                # A wait held by SQS, never an ETA kept by a worker: past the visibility timeout
                # SQS would hand the task to a second worker and it would run twice.
                "delay_seconds": self.delay_seconds,
                # Celery would copy a repr of the arguments (the mail itself) into the headers, where
                # it shows in logs and the DLQ and, escaped, makes the queue message larger.
                "argsrepr": repr([self.message_id, self.provider]),
                "kwargsrepr": "{}",
            },
        )

    def publish(self) -> None:
        queues.publish(self.to_publish())

    @staticmethod
    def publish_many(tasks: list[DeliveryTask]) -> dict[str, Exception]:
        """One SendMessageBatch per 10; the error of each task SQS did not take, by message id."""
        if not tasks:
            return {}
        try:
            return queues.publish_in_batches([task.to_publish() for task in tasks])
        except Exception as exc:  # before any batch went out (no queue URL, no connection)
            return {task.message_id: exc for task in tasks}
