"""The delivery task's wire format (mail/delivery_task.py): what is published reads back as the
same task from the real SQS-compatible server, and tasks published by the release before the
core was reshaped (captured from it in tests/fixtures/) are read and delivered by today's worker,
so messages already queued during a deploy still go out (delivered: tests/test_delivery.py)."""

import base64
import json
from pathlib import Path

import pytest

from mail.delivery_task import DeliveryTask, UnreadableTask

BEFORE_RESHAPE = json.loads((Path(__file__).parent / "fixtures" / "delivery_tasks_before_reshape.json").read_text())["tasks"]
MAIL = {"from": {"email": "shop@example.com"}, "to": [{"email": "ann@example.com"}], "subject": "s", "text": "t"}


def received(sqs, queue_url) -> str:
    (message,) = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return message["Body"]


@pytest.mark.parametrize(
    "task",
    [
        DeliveryTask("m-1", MAIL),
        DeliveryTask("m-2", MAIL, provider="mailgun", step=4, retries=2, only=True),
        DeliveryTask(
            "m-3",
            {"claim_check": {"bucket": "b", "key": "messages/m-3.json", "bytes": 9, "attachments": []}},
            step=1,
            recheck=True,
        ),
    ],
    ids=["first attempt", "a retry for one provider", "a recheck of a stored body"],
)
def test_a_published_task_reads_back_as_itself(empty_queues, sqs, task):
    task.publish()
    assert DeliveryTask.from_sqs_body(received(sqs, empty_queues.queue_url)) == task


def test_a_task_says_how_long_sqs_holds_it(empty_queues, sqs):
    DeliveryTask("m-4", MAIL, delay_seconds=2).publish()
    assert sqs.receive_message(QueueUrl=empty_queues.queue_url, WaitTimeSeconds=0).get("Messages") is None
    assert DeliveryTask.from_sqs_body(received(sqs, empty_queues.queue_url)).message_id == "m-4"


def test_the_mail_never_travels_in_the_headers(empty_queues, sqs):
    DeliveryTask("m-5", {**MAIL, "subject": "secret subject"}).publish()
    envelope = json.loads(base64.b64decode(received(sqs, empty_queues.queue_url)))
    assert "secret subject" not in json.dumps(envelope["headers"]) and envelope["headers"]["argsrepr"] == "['m-5', None]"


@pytest.mark.parametrize("captured", BEFORE_RESHAPE, ids=[t["description"] for t in BEFORE_RESHAPE])
def test_tasks_of_the_release_before_read_as_they_were_meant(captured):
    task = DeliveryTask.from_sqs_body(captured["sqs_body"])
    assert (task.message_id, task.provider, task.step) == (captured["message_id"], captured["provider"], captured["step"])
    assert task.payload["subject"] == "Queued before the upgrade"


def test_what_is_not_a_delivery_task_is_unreadable():
    with pytest.raises(UnreadableTask):
        DeliveryTask.from_sqs_body("not base64 at all")
    with pytest.raises(UnreadableTask):
        DeliveryTask.received(["only an id"], {}, 0)
    # A dead letter's record, as the drainer keeps it, and without keyword arguments or provider.
    assert DeliveryTask.from_record(["m-6", MAIL, "mailgun", {"step": 2, "recheck": False}]) == DeliveryTask(
        "m-6", MAIL, "mailgun", step=2
    )
    assert DeliveryTask.from_record(["m-6", MAIL, None]) == DeliveryTask("m-6", MAIL)
    assert DeliveryTask.from_record(["m-6", MAIL, {"step": 1}]) == DeliveryTask("m-6", MAIL, step=1)
