"""The SQS side of the service: clients, idempotent provisioning, the queue URL Celery publishes
to, publishing Celery tasks one by one or in batches, reading one back, and the size a task will
have on the wire. Nothing here knows what a task means (mail/delivery_task.py does)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from dataclasses import dataclass

import boto3
from botocore.config import Config
from celery import current_app
from django.conf import settings
from kombu.asynchronous.aws.sqs.message import AsyncMessage
from kombu.utils.json import dumps as kombu_dumps

log = logging.getLogger(__name__)

# Celery's headers and kombu's envelope around the task body, measured at about 1.5 KiB with the
# short argsrepr mail/delivery_task.py sets; generous so the estimate never falls below the real
# size (tests compare the two on the real server).
ENVELOPE_ALLOWANCE_BYTES = 4096
MAIN_QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
# SendMessageBatch, DeleteMessageBatch and ReceiveMessage take at most 10 messages a call.
SQS_MAX_BATCH = 10

_resolve_lock = threading.Lock()


def sqs_client(**config_overrides):
    """A boto3 SQS client with the same bounded timeouts and retries as Celery's."""
    return boto3.client(
        "sqs",
        region_name=settings.AWS_REGION,
        endpoint_url=settings.SQS_ENDPOINT_URL,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
        config=Config(**{**settings.SQS_CLIENT_CONFIG, **config_overrides}),
    )


def probe_client():
    """One short attempt: a readiness probe or a metrics scrape must answer within its caller's
    timeout, and an SQS outage is a reading for them, not something to wait out."""
    return sqs_client(connect_timeout=2, read_timeout=2, retries={"total_max_attempts": 1})


# A queue's messages by state: SQS's attribute → the state's name in /metrics and the admin.
DEPTH_ATTRIBUTES = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}


def depths(names: tuple[str, ...] = ()) -> dict[str, dict[str, int] | None]:
    """The delivery queue's and the dead-letter queue's messages by state, by queue name; None
    for a queue SQS did not answer about. One short attempt each (probe_client): the metrics
    scrape and the admin's overview read an outage as a fact, they do not wait it out."""
    client = probe_client()
    found: dict[str, dict[str, int] | None] = {}
    for name in names or (settings.SQS_QUEUE_NAME, settings.SQS_DLQ_NAME):
        try:
            url = client.get_queue_url(QueueName=name)["QueueUrl"]
            attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=list(DEPTH_ATTRIBUTES))["Attributes"]
        except Exception as exc:  # whatever it was, the reading is "unavailable"
            log.warning("queue depth unavailable", extra={"queue": name, "error": exc.__class__.__name__})
            found[name] = None
            continue
        found[name] = {state: int(attributes.get(attribute, 0)) for attribute, state in DEPTH_ATTRIBUTES.items()}
    return found


@dataclass(frozen=True)
class ProvisionedQueues:
    queue_url: str
    dlq_url: str
    dlq_arn: str
    callback_queue_url: str = ""
    callback_dlq_url: str = ""


def _ensure_queue(client, name: str, attributes: dict[str, str]) -> str:
    """Create the queue if it is missing, then make its attributes what they should be.

    CreateQueue fails when an existing queue's attributes differ from the ones asked for, so
    attributes are set in a second, repeatable step: running this again converges a queue whose
    settings have changed."""
    try:
        url = client.get_queue_url(QueueName=name)["QueueUrl"]
    except client.exceptions.QueueDoesNotExist:
        url = client.create_queue(QueueName=name)["QueueUrl"]
        log.info("created queue", extra={"queue": name})
    client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def _ensure_pair(client, name: str, dlq_name: str, visibility_timeout: int) -> tuple[str, str, str]:
    """A queue and its dead-letter queue, with the redrive policy that moves a task received
    SQS_MAX_RECEIVE_COUNT times to the dead-letter queue: (queue URL, DLQ URL, DLQ ARN)."""
    max_size = str(settings.SQS_MAX_MESSAGE_BYTES)
    dlq_url = _ensure_queue(
        client,
        dlq_name,
        # SQS keeps a message's original enqueue time when it moves it to the DLQ, so the DLQ's
        # retention must be the longer one.
        {"MessageRetentionPeriod": str(settings.SQS_DLQ_RETENTION_SECONDS), "MaximumMessageSize": max_size},
    )
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.SQS_MAX_RECEIVE_COUNT)}
    queue_url = _ensure_queue(
        client,
        name,
        {
            "VisibilityTimeout": str(visibility_timeout),
            "MaximumMessageSize": max_size,
            "MessageRetentionPeriod": str(MAIN_QUEUE_RETENTION_SECONDS),
            "RedrivePolicy": json.dumps(redrive),
        },
    )
    return queue_url, dlq_url, dlq_arn


def provision() -> ProvisionedQueues:
    """Create or update the delivery queue, the callbacks' queue (mail/callbacks/) and their
    dead-letter queues."""
    client = sqs_client()
    queue_url, dlq_url, dlq_arn = _ensure_pair(
        client, settings.SQS_QUEUE_NAME, settings.SQS_DLQ_NAME, settings.SQS_VISIBILITY_TIMEOUT
    )
    callback_url, callback_dlq_url, _ = _ensure_pair(
        client, settings.CALLBACK_QUEUE_NAME, settings.CALLBACK_DLQ_NAME, settings.CALLBACK_VISIBILITY_TIMEOUT
    )
    return ProvisionedQueues(queue_url, dlq_url, dlq_arn, callback_url, callback_dlq_url)


def use_predefined_queue(name: str | None = None) -> None:
    """Tell Celery the URLs of the delivery queue and the callbacks' queue, once per process,
    before its first connection (`name`: the one that must be found).

    With the URLs predefined kombu never lists or creates queues: a queue it created itself would
    lack the redrive policy, and a missing queue must be an error, not a silent new queue. Both
    are told at once because kombu reads the list when it opens a channel: a queue added later
    would be unknown to the channels already open."""
    app = current_app
    name = name or settings.SQS_QUEUE_NAME
    if name in app.conf.broker_transport_options.get("predefined_queues", {}):
        return
    with _resolve_lock:
        options = dict(app.conf.broker_transport_options)
        known = dict(options.get("predefined_queues", {}))
        if name in known:
            return
        client = sqs_client()
        for queue_name in dict.fromkeys([name, settings.SQS_QUEUE_NAME, settings.CALLBACK_QUEUE_NAME]):
            try:
                known[queue_name] = {"url": client.get_queue_url(QueueName=queue_name)["QueueUrl"]}
            except Exception:
                if queue_name == name:
                    raise
                log.warning("queue not found; its tasks cannot be published", extra={"queue": queue_name})
        options["predefined_queues"] = known
        app.conf.broker_transport_options = options


def _base64_length(raw_length: int) -> int:
    return 4 * ((raw_length + 2) // 3)


def task_wire_size(args: list, kwargs: dict) -> int:
    """An upper bound of the bytes a task with these arguments occupies in SQS.

    Celery serializes the arguments as JSON with every non-ASCII character escaped (one UTF-8
    byte of text can become up to 12), kombu base64-encodes that body inside its JSON envelope,
    and the SQS transport base64-encodes the envelope again."""
    body = kombu_dumps((args, kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}))
    return _base64_length(_base64_length(len(body.encode("utf-8"))) + ENVELOPE_ALLOWANCE_BYTES)


@dataclass(frozen=True)
class CeleryMessage:
    """A Celery task as kombu wrote it to SQS."""

    task_name: str
    task_id: str
    args: list
    kwargs: dict
    retries: int


class UnreadableMessage(Exception):
    """An SQS message that is not a Celery task kombu wrote."""


def read_celery_message(sqs_body: str) -> CeleryMessage:
    """base64 of a JSON envelope whose body is base64 of [args, kwargs, embed] (kombu's SQS
    transport with its default base64 encoding, Celery's task protocol 2)."""
    try:
        envelope = json.loads(base64.b64decode(sqs_body, validate=True))
        headers = envelope.get("headers") or {}
        args, kwargs = json.loads(base64.b64decode(envelope["body"], validate=True))[:2]
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise TypeError("the body is not [args, kwargs, ...]")
        return CeleryMessage(
            task_name=str(headers.get("task", "")),
            task_id=str(headers.get("id", "")),
            args=args,
            kwargs=kwargs,
            retries=int(headers.get("retries") or 0),
        )
    except (binascii.Error, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise UnreadableMessage(f"not a readable Celery task: {exc!r}") from exc


@dataclass(frozen=True)
class TaskToPublish:
    key: str  # unique within one call: names the task in the batch and in the result
    name: str
    args: list
    kwargs: dict
    options: dict


def publish(task: TaskToPublish) -> None:
    use_predefined_queue(task.options.get("queue"))
    current_app.send_task(task.name, args=task.args, kwargs=task.kwargs, **task.options)


def publish_in_batches(tasks: list[TaskToPublish]) -> dict[str, Exception]:
    """Publish the tasks with one SQS SendMessageBatch per 10 (or fewer when large); return the
    error of every task SQS did not take, by key. An empty result means all were published.

    Celery and kombu build each message exactly as for a single publish; only the last step, the
    SendMessage call of kombu's SQS channel (its `_put`), is replaced on this producer's own
    channel by a collector, and the collected messages are encoded as `_put` encodes them. The
    worker therefore reads a batched task like any other (tests consume them with a real worker).
    This relies on kombu's channel internals (`_put`, `_new_queue`, `sqs`, pinned kombu 5.7)."""
    app = current_app
    for queue_name in {task.options.get("queue") for task in tasks}:
        use_predefined_queue(queue_name)
    failures: dict[str, Exception] = {}
    with app.producer_or_acquire() as producer:
        channel = producer.channel
        collected: list[tuple[str, dict]] = []
        channel._put = lambda queue, message, **kwargs: collected.append((queue, message))
        try:
            built = []
            for task in tasks:
                app.send_task(task.name, args=task.args, kwargs=task.kwargs, producer=producer, **task.options)
                ((queue, message),) = collected  # one task, one message
                collected.clear()
                built.append((task.key, queue, message))
        finally:
            del channel._put  # the class's own method again, before the producer goes back to the pool
        by_queue: dict[str, list] = {}
        for key, queue, message in built:
            by_queue.setdefault(queue, []).append(_batch_entry(channel, key, message))
        for queue, entries in by_queue.items():
            client = channel.sqs(queue=channel.canonical_queue_name(queue))
            url = channel._new_queue(queue)
            for chunk in _chunks(entries):
                try:
                    answer = client.send_message_batch(QueueUrl=url, Entries=chunk)
                except Exception as exc:  # the whole call failed: none of this chunk is known to be queued
                    failures.update((entry["Id"], exc) for entry in chunk)
                    continue
                for failed in answer.get("Failed", ()):
                    failures[failed["Id"]] = QueueRefused(failed.get("Code", ""), failed.get("Message", ""))
    return failures


class QueueRefused(Exception):
    """SQS answered a batch but refused this entry."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")


def _batch_entry(channel, key: str, message: dict) -> dict:
    # As kombu's SQS channel `_put` turns a message into SendMessage arguments (standard queues).
    entry = {"Id": key}
    delay = channel._resolve_delay_seconds(message.get("properties", {}))
    if delay is not None:
        entry["DelaySeconds"] = delay
    body = kombu_dumps(message)
    entry["MessageBody"] = AsyncMessage().encode(body) if channel.sqs_base64_encoding else body
    return entry


def _chunks(entries: list[dict]):
    chunk, chunk_bytes = [], 0
    for entry in entries:
        size = len(entry["MessageBody"].encode())
        if chunk and (len(chunk) == SQS_MAX_BATCH or chunk_bytes + size > settings.SQS_MAX_MESSAGE_BYTES):
            yield chunk
            chunk, chunk_bytes = [], 0
        chunk.append(entry)
        chunk_bytes += size
    if chunk:
        yield chunk
