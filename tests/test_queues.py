"""Queue provisioning and the queue-size check, against the real SQS-compatible server."""

import base64
import json

import pytest
from django.core.management import call_command
from django.test import override_settings

from mail import queues
from mail.delivery_task import DeliveryTask
from providers.base import Address, Attachment, OutboundMessage


def attributes(sqs, url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_provisioning_creates_queue_and_dlq_with_redrive(provisioned_queues, sqs):
    main = attributes(sqs, provisioned_queues.queue_url)
    dlq = attributes(sqs, provisioned_queues.dlq_url)
    assert json.loads(main["RedrivePolicy"]) == {"deadLetterTargetArn": provisioned_queues.dlq_arn, "maxReceiveCount": 3}
    assert main["VisibilityTimeout"] == "300"
    assert main["MaximumMessageSize"] == dlq["MaximumMessageSize"] == str(1024 * 1024)
    assert dlq["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    assert int(dlq["MessageRetentionPeriod"]) > int(main["MessageRetentionPeriod"])


def test_provisioning_again_converges_changed_settings(sqs, capsys):
    names = {"SQS_QUEUE_NAME": "converge", "SQS_DLQ_NAME": "converge-dlq"}
    with override_settings(**names, SQS_VISIBILITY_TIMEOUT=120, SQS_MAX_RECEIVE_COUNT=5):
        call_command("provision_queues")
        first = queues.provision()
    with override_settings(**names, SQS_VISIBILITY_TIMEOUT=600, SQS_MAX_RECEIVE_COUNT=2):
        again = queues.provision()
    assert again == first
    main = attributes(sqs, again.queue_url)
    assert main["VisibilityTimeout"] == "600"
    assert json.loads(main["RedrivePolicy"])["maxReceiveCount"] == 2
    assert "dead-letter queue converge-dlq" in capsys.readouterr().out


def message_with(text: str, attachment_bytes: int = 0) -> OutboundMessage:
    attachments = ()
    if attachment_bytes:
        attachments = (Attachment("a.bin", base64.b64encode(b"\x07" * attachment_bytes).decode(), "application/octet-stream"),)
    return OutboundMessage(
        message_id="00000000-0000-0000-0000-000000000000",
        sender=Address("sender@example.com", "Sénder"),
        to=(Address("rcpt@example.com"),),
        subject="Größe",
        text=text,
        attachments=attachments,
    )


@pytest.mark.parametrize(
    "text,attachment_bytes",
    [("plain ascii", 0), ("é" * 20_000, 0), ("日本語" * 10_000, 0), ("😀" * 5_000, 0), ("x", 300_000)],
    ids=["tiny", "latin-1", "cjk", "astral", "attachment"],
)
def test_wire_size_estimate_bounds_what_sqs_really_stores(empty_queues, sqs, text, attachment_bytes):
    message = message_with(text, attachment_bytes)
    estimate = DeliveryTask(message.message_id, message.to_payload()).wire_size()

    DeliveryTask(message.message_id, message.to_payload()).publish()
    received = sqs.receive_message(QueueUrl=empty_queues.queue_url, WaitTimeSeconds=5)["Messages"][0]
    actual = len(received["Body"].encode())
    assert actual <= estimate <= actual + queues.ENVELOPE_ALLOWANCE_BYTES * 2


def test_non_ascii_text_costs_far_more_queue_bytes_than_ascii():
    ascii_size = DeliveryTask("id", message_with("a" * 30_000).to_payload()).wire_size()
    cjk_size = DeliveryTask("id", message_with("語" * 10_000).to_payload()).wire_size()  # also 30,000 UTF-8 bytes
    assert cjk_size > 1.8 * ascii_size


def test_a_task_just_under_the_limit_is_taken_by_sqs(empty_queues, sqs):
    # Grow an attachment until the estimate is as close under 1 MiB as it gets: the real SQS
    # server must still take it, so the estimate never lets through what SQS would refuse.
    size = 300_000

    def wire_size(message):
        return DeliveryTask(message.message_id, message.to_payload()).wire_size()

    while wire_size(message_with("x", size + 1_000)) <= 1024 * 1024:
        size += 1_000
    message = message_with("x", size)
    # Each 1,000 attachment bytes cost about 2,400 queue bytes (base64 three times over).
    assert 1024 * 1024 - 2_500 < wire_size(message) <= 1024 * 1024
    DeliveryTask(message.message_id, message.to_payload()).publish()
    assert sqs.receive_message(QueueUrl=empty_queues.queue_url, WaitTimeSeconds=5)["Messages"]


def test_queue_message_headers_name_the_message_not_its_content(empty_queues, sqs):
    message = message_with("the secret body text")
    DeliveryTask(message.message_id, message.to_payload()).publish()
    body = sqs.receive_message(QueueUrl=empty_queues.queue_url, WaitTimeSeconds=5)["Messages"][0]["Body"]
    headers = json.loads(base64.b64decode(body))["headers"]
    assert headers["argsrepr"] == repr([message.message_id, None])
    assert "secret body" not in json.dumps(headers)
