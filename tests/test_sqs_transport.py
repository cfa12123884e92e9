"""The worker's batched deletes (mailer_project/sqs_transport.py) held to their bound: past it an
ack deletes on its own thread, and what a stopping worker cannot delete in time is logged with
its count. The SQS client is a stand-in that hangs on its first call, as an SQS endpoint can."""

import logging
import threading

from mailer_project import sqs_transport
from mailer_project.sqs_transport import BatchedDeleter, _Delete

from .support import wait_until


class HangingSqs:
    """delete_message_batch hangs on its first call (until released) and answers the others."""

    def __init__(self):
        self.release = threading.Event()
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def delete_message_batch(self, QueueUrl, Entries):  # noqa: N803 - boto3's names
        with self.lock:
            first = not self.calls
            self.calls.append((threading.current_thread().name, len(Entries)))
        if first:
            self.release.wait(timeout=30)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def test_a_full_backlog_deletes_on_the_callers_thread_and_a_stuck_close_counts_what_is_left(monkeypatch, caplog):
    monkeypatch.setattr(sqs_transport, "MAX_PENDING_DELETES", 20)
    monkeypatch.setattr(sqs_transport, "CLOSE_WAIT_SECONDS", 0.5)
    sqs = HangingSqs()
    deleter = BatchedDeleter()
    deleter.add(_Delete(sqs, "q", "first"))
    wait_until(lambda: sqs.calls, what="the deleting thread to hang in SQS")
    for n in range(20):
        deleter.add(_Delete(sqs, "q", f"waiting {n}"))  # the backlog, at its bound
    deleter.add(_Delete(sqs, "q", "one too many"))
    assert ("MainThread", 1) in sqs.calls  # deleted at once, by the one who acked it

    with caplog.at_level(logging.ERROR, logger="mailer_project.sqs_transport"):
        close = threading.Thread(target=deleter.close)
        close.start()
        close.join(timeout=10)
        sqs.release.set()
    (record,) = [r for r in caplog.records if getattr(r, "outcome", "") == "acks_not_deleted"]
    assert record.count == 20  # the whole backlog; the one deleted by its caller is not among them
