"""kombu's SQS transport, with the worker's acks taken off its event loop.

kombu acks each message with a blocking DeleteMessage call made on the consumer's event loop,
the one thread that also receives. Measured with 32 worker threads (docs/benchmarks.md), those
calls took three quarters of that thread's time and the pool sat idle waiting for work. Here an
ack frees the message's prefetch slot at once and hands its receipt handle to a thread that
deletes up to 10 at a time with DeleteMessageBatch.

Guarantees are unchanged: an ack only ever follows the end of the task (late ack), and a delete
that never happens (the process killed, SQS refusing) means only that SQS hands the message out
again after its visibility timeout; the delivery's database claim then acks it without sending
(docs/architecture.md, guarantee 4). Anything not yet deleted when the channel closes is deleted first.

A worker that stops releases the messages it received and never started: their visibility is set
back to 0, so another worker takes them within seconds rather than after the visibility timeout
(kombu would publish a copy of each instead, leaving the original hidden to come back later).

The deletes waiting for the thread are bounded (MAX_PENDING_DELETES: past it an ack deletes at
once, on the caller's thread), and those still waiting when the channel closes and the thread
cannot finish in time are logged with outcome "acks_not_deleted" and their count (a field a log
metric filter can sum).

Every connection of a process shares one boto3 client per configuration (SharedClients), made
from boto3's default session: kombu would make a boto3 Session and a client for each queue of each
connection, and each Session parses SQS's model again, about 8 MB apiece (docs/benchmarks.md,
issue 21).

Selected with CELERY_BROKER_TRANSPORT; the URL stays sqs://."""

from __future__ import annotations

import logging
import os
import queue as queue_module
import threading
import time
from dataclasses import dataclass

import boto3
from botocore.config import Config
from kombu.transport import SQS, virtual

from mail.queues import SQS_MAX_BATCH

log = logging.getLogger(__name__)

# How long the deleting thread waits for more handles to fill a batch: short, because until the
# delete lands a message that outlives its visibility timeout would be handed out again.
BATCH_WAIT_SECONDS = 0.02
# With every prefetch slot busy kombu's event loop (threads and prefork pools) looks again after
# polling_interval; a slot freed by an ack should be refilled sooner than that, and a look costs
# no request.
BUSY_RECHECK_SECONDS = 0.005
# The gevent pool has no event loop: with every slot busy kombu slept polling_interval (0.1 s)
# between looks, so a freed slot waited up to that long. It waits for the ack instead, at most
# this long at a time (then kombu's loop goes round: shutdown, heartbeats) ...
SLOT_WAIT_SECONDS = 1.0
# ... and then this long for more slots, so that one receive (a request, and CPU) fetches
# several messages rather than one per ack.
RECEIVE_GATHER_SECONDS = 0.01
# Acked messages waiting for the deleting thread: ten batches per send in flight of the largest
# pool (64) would be 640; past this, SQS is not keeping up, and an ack deletes on its own thread.
MAX_PENDING_DELETES = 1000
# How long a closing channel waits for the deleting thread to finish what it holds.
CLOSE_WAIT_SECONDS = 20
# HTTP connections of a shared client: one per send in flight of the largest pool (64), as many as
# the separate clients had between them, so a publish never waits for one or discards one.
SHARED_CLIENT_CONNECTIONS = 64


@dataclass(frozen=True)
class _Delete:
    client: object
    queue_url: str
    receipt_handle: str


class BatchedDeleter:
    """One thread that deletes acked messages in batches of up to SQS_MAX_BATCH per queue."""

    def __init__(self):
        self._pending: queue_module.Queue[_Delete | None] = queue_module.Queue(MAX_PENDING_DELETES)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()

    def add(self, delete: _Delete) -> None:
        with self._lock:
            if not self._closed:
                if self._thread is None or not self._thread.is_alive():
                    # Started on first use: in a prefork worker that is after the fork, in the
                    # process that consumes.
                    self._thread = threading.Thread(target=self._run, name="sqs-acks", daemon=True)
                    self._thread.start()
                # Under the lock, so no handle can land behind close()'s stop marker.
                try:
                    self._pending.put_nowait(delete)
                    return
                except queue_module.Full:
                    pass  # a backlog at its bound: this one is deleted here, slowing the caller
        self._delete([delete])  # an ack after close, or past the bound: at once, as kombu would

    def close(self) -> None:
        """Delete everything handed over so far, then stop the thread; later acks delete at once."""
        with self._lock:
            self._closed = True  # from here on add() deletes at once: nothing lands behind the marker
            thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            # Waits only while the backlog is at its bound and the thread takes nothing (SQS hung).
            self._pending.put(None, timeout=CLOSE_WAIT_SECONDS)
        except queue_module.Full:
            pass
        # Long enough for a few batches at the SQS client's timeouts (SQS_CLIENT_CONFIG).
        thread.join(timeout=CLOSE_WAIT_SECONDS)
        if thread.is_alive():
            with self._pending.mutex:
                left = sum(1 for item in self._pending.queue if item is not None)
            log.error(
                "stopping with acked messages not deleted: SQS will hand them out again and their claims will ack them",
                extra={"outcome": "acks_not_deleted", "count": left},
            )

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._pending.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < SQS_MAX_BATCH:
                try:
                    more = self._pending.get(timeout=BATCH_WAIT_SECONDS)
                except queue_module.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            by_queue: dict[tuple[int, str], list[_Delete]] = {}
            for delete in batch:
                by_queue.setdefault((id(delete.client), delete.queue_url), []).append(delete)
            for deletes in by_queue.values():
                self._delete(deletes)
        # Nothing follows the stop marker: close() queues it under the lock, and acks after
        # close() delete at once.

    @staticmethod
    def _delete(deletes: list[_Delete]) -> None:
        entries = [{"Id": str(n), "ReceiptHandle": d.receipt_handle} for n, d in enumerate(deletes)]
        try:
            response = deletes[0].client.delete_message_batch(QueueUrl=deletes[0].queue_url, Entries=entries)
        except Exception:
            # An error, not a warning: should it last (permissions, say), every sent message
            # comes back, is acked by its claim again, and finally reaches the DLQ.
            log.exception(
                "could not delete %d acked messages; SQS will hand them out again and their claims will ack them",
                len(deletes),
            )
            return
        failed = [f for f in response.get("Failed", []) if f.get("Code") != "ReceiptHandleIsInvalid"]
        if failed:
            log.error("SQS refused to delete %d acked messages: %s", len(failed), failed[:3])


_stopping = threading.Event()
# Set by every ack or reject (a prefetch slot freed), and at shutdown; waited on by a gevent
# worker's receiving loop while every slot is busy.
_slot_freed = threading.Event()


def stop_receiving() -> None:
    """The worker is shutting down: take no more messages, so what is still queued stays visible
    for the next worker. kombu's event loop (the threads and prefork pools) stops receiving on its
    own; the gevent pool receives with blocking calls that would go on until the last task ends."""
    _stopping.set()
    _slot_freed.set()


class QoS(SQS.QoS):
    def restore_unacked(self):
        """At shutdown, release what was received and not acked (never started, as a warm shutdown
        lets running tasks finish): visibility 0, in batches, so the next worker has them at once.
        Returns the (error, message) pairs that could not be released, as kombu expects."""
        self._flush()
        unacked = []
        while self._delivered:
            try:
                _, message = self._delivered.popitem()
            except KeyError:  # another thread acked it meanwhile
                break
            unacked.append(message)
        self._delivered.clear()
        by_queue: dict[tuple[str, str | None], list] = {}
        for message in unacked:
            info = message.delivery_info
            if "sqs_message" in info:
                by_queue.setdefault((info["sqs_queue"], info.get("routing_key")), []).append(message)
        kept = 0
        for (queue_url, routing_key), messages in by_queue.items():
            client = self.channel.sqs(queue=self.channel.canonical_queue_name(routing_key) if routing_key else None)
            for start in range(0, len(messages), SQS_MAX_BATCH):
                kept += _release(client, queue_url, messages[start : start + SQS_MAX_BATCH])
        if unacked:
            log.info(
                "released the messages received and not started",
                extra={"outcome": "released", "count": len(unacked) - kept, "not_released": kept},
            )
        # Nothing for kombu to dump: one not released comes back after its visibility timeout.
        return []


def _release(client, queue_url: str, messages: list) -> int:
    """Make the messages visible again now; returns how many could not be."""
    entries = [
        {"Id": str(n), "ReceiptHandle": m.delivery_info["sqs_message"]["ReceiptHandle"], "VisibilityTimeout": 0}
        for n, m in enumerate(messages)
    ]
    try:
        response = client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
    except Exception as exc:
        # They come back after their visibility timeout instead: later, never lost.
        log.warning("could not release %d received messages: %r", len(messages), exc)
        return len(messages)
    return len(response.get("Failed", []))


class SharedClients:
    """One boto3 client per configuration (service, region, credentials, endpoint, options) for
    the whole process, made on first use. boto3's clients are thread-safe; every connection of
    ours has the same configuration, so the producer pool's connections, the consumer's and the
    acks' thread all use one. A forked child (the prefork pool) starts without any: a client's
    connections must not be shared across processes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._clients: dict[tuple, object] = {}

    def get(self, key: tuple, make):
        with self._lock:
            if key not in self._clients:
                self._clients[key] = make()
            return self._clients[key]

    def reset(self) -> None:
        with self._lock:
            self._clients = {}


CLIENTS = SharedClients()
os.register_at_fork(after_in_child=CLIENTS.reset)


class Channel(SQS.Channel):
    QoS = QoS

    def _new_boto_client(self, service, region, access_key_id, secret_access_key, session_token=None, config=None):
        options = self.transport_options.get("client-config") or {}
        key = (service, region, access_key_id, secret_access_key, session_token, self.endpoint_url, self.is_secure)
        key += (repr(sorted(options.items())), repr(config))
        client_config = Config(**options).merge(Config(max_pool_connections=SHARED_CLIENT_CONNECTIONS))
        if config is not None:
            client_config = client_config.merge(config)
        endpoint = {"endpoint_url": self.endpoint_url} if self.endpoint_url is not None else {}

        def make():
            # As kombu's own _new_boto_client, but from boto3's default session, whose parsed
            # models mail/queues.py's clients share: a Session of its own parses SQS's again.
            return boto3.client(
                service,
                region_name=region,
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                aws_session_token=session_token,
                use_ssl=self.is_secure if self.is_secure is not None else True,
                config=client_config,
                **endpoint,
            )

        return CLIENTS.get(key, make)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._deleter = BatchedDeleter()

    def basic_ack(self, delivery_tag, multiple=False):
        try:
            info = self.qos.get(delivery_tag).delivery_info
            sqs_message = info["sqs_message"]
        except KeyError:
            return super().basic_ack(delivery_tag, multiple)
        queue = self.canonical_queue_name(info["routing_key"]) if "routing_key" in info else None
        self._deleter.add(_Delete(self.sqs(queue=queue), info["sqs_queue"], sqs_message["ReceiptHandle"]))
        # The slot is free now; the delete follows within BATCH_WAIT_SECONDS.
        virtual.Channel.basic_ack(self, delivery_tag, multiple)
        _slot_freed.set()

    def basic_reject(self, delivery_tag, requeue=False):
        super().basic_reject(delivery_tag, requeue)
        _slot_freed.set()

    def drain_events(self, timeout=None, callback=None, **kwargs):
        """The gevent pool's receive (it has no event loop)."""
        if self._consumers:
            self._wait_for_slots()
        return super().drain_events(timeout=timeout, callback=callback, **kwargs)

    def _wait_for_slots(self) -> None:
        """With fewer prefetch slots free than one receive may fill, wait for acks to free them:
        for the first one (rather than return empty, which made kombu sleep polling_interval),
        then RECEIVE_GATHER_SECONDS for more."""
        enough = min(SQS_MAX_BATCH, self.qos.prefetch_count or SQS_MAX_BATCH)
        gather_until = None
        while not _stopping.is_set():
            free = self.qos.can_consume_max_estimate()
            if free is None or free >= enough:
                return
            now = time.monotonic()
            if free and gather_until is None:
                gather_until = now + RECEIVE_GATHER_SECONDS
            wait = gather_until - now if free else SLOT_WAIT_SECONDS
            if wait <= 0:
                return
            _slot_freed.clear()
            if self.qos.can_consume_max_estimate() != free:  # freed between the look and the clear
                continue
            if not _slot_freed.wait(wait) and not free:
                return  # nothing freed for a whole wait: kombu's loop goes round

    def _get_bulk(self, queue, max_if_unlimited=SQS.SQS_MAX_MESSAGES, callback=None):
        if _stopping.is_set():
            raise queue_module.Empty()
        return super()._get_bulk(queue, max_if_unlimited, callback)

    def _loop1(self, queue, messages_fetched=None):
        if messages_fetched is None and queue in self._active_queues and not self.qos.can_consume():
            self.hub.call_later(BUSY_RECHECK_SECONDS, self._schedule_queue, queue)
            return
        super()._loop1(queue, messages_fetched)

    def close(self):
        self._deleter.close()
        super().close()


class Transport(SQS.Transport):
    Channel = Channel
