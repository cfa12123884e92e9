"""Messages too big for SQS travel through S3 (the claim-check): through the real SQS-compatible
server's S3, real API and worker processes and the provider simulator."""

import base64
import hashlib
import os
import uuid

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from django.conf import settings
from django.contrib.auth import get_user_model

from mail import claim_check, operator
from mail.api.serializers import MessageCreateSerializer
from mail.delivery_task import DeliveryTask
from mail.models import DeadLetter, Message
from providers.base import OutboundMessage

from .embedded_services import free_port
from .stack import mail_body, task_arguments
from .support import drain, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def s3():
    return boto3.client(
        "s3", region_name="us-east-1", endpoint_url=settings.S3_ENDPOINT_URL, aws_access_key_id="t", aws_secret_access_key="t"
    )


def stored(message_id: str) -> bool:
    try:
        s3().head_object(Bucket=settings.S3_BUCKET, Key=claim_check.key_for(message_id))
        return True
    except ClientError:
        return False


def attachment(name: str, content: bytes, content_type: str = "application/octet-stream") -> dict:
    return {"filename": name, "content": base64.b64encode(content).decode(), "content_type": content_type}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sendgrid_attachment_hashes(simulator, message_id: str) -> dict[str, str]:
    for request in simulator.requests("sendgrid", accepted=True):
        if request["json"]["personalizations"][0]["custom_args"]["mailer_message_id"] == message_id:
            return {a["filename"]: sha256(base64.b64decode(a["content"])) for a in request["json"].get("attachments", [])}
    raise AssertionError(f"SendGrid never accepted {message_id}")


def mailgun_attachment_hashes(simulator, message_id: str) -> dict[str, str]:
    for request in simulator.requests("mailgun", accepted=True):
        if request["form"]["v:mailer_message_id"][0] == message_id:
            return {f["filename"]: f["sha256"] for f in request["files"]}
    raise AssertionError(f"Mailgun never accepted {message_id}")


def test_a_20_mb_message_goes_through_s3_to_sendgrid_then_to_mailgun(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    invoice, report = os.urandom(10_000_000), os.urandom(10_000_000)
    body = mail_body(
        "20 MB", attachments=[attachment("invoice.pdf", invoice, "application/pdf"), attachment("report.bin", report)]
    )
    expected = {"invoice.pdf": sha256(invoice), "report.bin": sha256(report)}

    by_sendgrid = stack.post(body)
    message = stack.wait_for_status(by_sendgrid, "sent", timeout=120)

    assert message["provider"] == "sendgrid"
    assert message["events"][0]["detail"].startswith("body stored in S3 (")
    assert sendgrid_attachment_hashes(simulator, by_sendgrid) == expected
    assert not stored(by_sendgrid)  # deleted once sent

    # SendGrid down: every retry and the failover read the body from S3 again.
    simulator.behave("sendgrid", status=503)
    by_mailgun = stack.post(body)
    message = stack.wait_for_status(by_mailgun, "sent", timeout=120)

    assert message["provider"] == "mailgun"
    assert [e["type"] for e in message["events"]].count("retry_scheduled") == 3
    assert mailgun_attachment_hashes(simulator, by_mailgun) == expected
    assert not stored(by_mailgun)


def body_of_wire_size(target: int, character: str) -> dict:
    """A message body whose task is as close to `target` queue bytes as one more character allows
    (at most target), found by bisection over the service's own size estimate."""

    def size(length: int) -> int:
        serializer = MessageCreateSerializer(data=mail_body("threshold", text=character * length))
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        fields.pop("send_at")
        fields.pop("ignore_suppressions")
        fields.pop("template")
        message_id = str(uuid.uuid4())
        return DeliveryTask(message_id, OutboundMessage(message_id, **fields).to_payload()).wire_size()

    low, high = 1, target
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if size(middle) <= target else (low, middle - 1)
    return mail_body("threshold", text=character * low)


@pytest.mark.parametrize("character", ["a", "語"], ids=["ASCII", "CJK"])
def test_just_under_the_threshold_travels_in_sqs_just_over_goes_to_s3_both_delivered(make_stack, simulator, character):
    stack = make_stack()
    under = body_of_wire_size(settings.LARGE_MESSAGE_BYTES, character)
    over = {**under, "text": under["text"] + character * 2}

    inline_id, stored_id = stack.post(under), stack.post(over)

    # Before any worker runs: what sits in the queue is the mail itself, or a pointer to S3.
    tasks = {}
    while len(tasks) < 2:
        for sqs_message in stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        ):
            message_id, payload, _ = task_arguments(sqs_message["Body"])
            tasks[message_id] = payload
    assert "text" in tasks[inline_id] and not claim_check.is_pointer(tasks[inline_id])
    assert claim_check.is_pointer(tasks[stored_id]) and stored(stored_id)

    stack.start_worker()
    for message_id, text in ((inline_id, under["text"]), (stored_id, over["text"])):
        assert stack.wait_for_status(message_id, "sent", timeout=60)["provider"] == "sendgrid"
        sent = next(
            r
            for r in simulator.requests("sendgrid")
            if r["json"]["personalizations"][0]["custom_args"]["mailer_message_id"] == message_id
        )
        assert sent["json"]["content"][0]["value"] == text
    assert not stored(stored_id)


def test_s3_down_at_accept_is_503_and_nothing_is_queued(make_stack):
    stack = make_stack()
    stack.start_api(S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    large = mail_body("large", attachments=[attachment("big.bin", os.urandom(1_000_000))])

    response = requests.post(f"{stack.api_url}/api/v1/messages", json=large, headers=stack.headers, timeout=60)

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "storage_unavailable"
    assert response.headers["Retry-After"]
    assert not Message.objects.exists()
    assert drain(stack.sqs, stack.queue_url) == 0
    # A message small enough for SQS needs no S3.
    assert (
        requests.post(f"{stack.api_url}/api/v1/messages", json=mail_body("small"), headers=stack.headers, timeout=30).status_code
        == 202
    )


def test_s3_down_at_send_time_is_retried_until_it_is_back(make_stack, simulator):
    stack = make_stack()
    message_id = stack.post(mail_body("large", attachments=[attachment("big.bin", os.urandom(1_000_000))]))

    blind = stack.start_worker(S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    waiting = wait_until(
        lambda: (m := stack.message(message_id)) and [e for e in m["events"] if e["type"] == "error"] and m,
        what="the worker to find S3 down",
    )
    assert "S3 did not return the message" in waiting["events"][-1]["detail"]
    assert waiting["status"] == "queued"
    assert simulator.requests() == []  # no provider was called, and none was blamed
    blind.stop()

    stack.start_worker()
    assert stack.wait_for_status(message_id, "sent", timeout=60)["provider"] == "sendgrid"
    assert not stored(message_id)


def test_a_dead_lettered_large_message_shows_its_attachments_and_can_be_requeued(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    simulator.behave("sendgrid", status=400)
    simulator.behave("mailgun", status=400)
    content = os.urandom(900_000)
    message_id = stack.post(mail_body("rejected", attachments=[attachment("scan.png", content, "image/png")]))
    stack.wait_for_status(message_id, "failed", timeout=60)
    wait_until(lambda: stack.dead_letter_task_ids() == [message_id], timeout=60, what="the task in the DLQ")
    stack.drain_dead_letters()

    dead_letter = DeadLetter.objects.get(message_id=message_id)
    pointer = dead_letter.task_args[1][claim_check.POINTER]
    assert pointer["attachments"] == [{"filename": "scan.png", "content_type": "image/png", "bytes": 900_000}]
    assert stored(message_id)  # kept for a requeue

    get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    admin = stack.admin_session("ops", "pw")
    page = admin.get(f"{stack.api_url}/admin/mail/deadletter/{dead_letter.pk}/change/", timeout=10).text
    assert "scan.png" in page and "900000" in page

    simulator.behave("sendgrid")
    stack.admin_action(admin, "mail/deadletter", "requeue", [dead_letter.pk])
    assert stack.wait_for_status(message_id, "sent", timeout=60)["provider"] == "sendgrid"
    assert sendgrid_attachment_hashes(simulator, message_id) == {"scan.png": sha256(content)}
    assert not stored(message_id)


def test_the_bucket_is_provisioned_private_encrypted_and_expiring(provisioned_queues):
    client = s3()
    rules = client.get_bucket_lifecycle_configuration(Bucket=settings.S3_BUCKET)["Rules"]
    encryption = client.get_bucket_encryption(Bucket=settings.S3_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
    public = client.get_public_access_block(Bucket=settings.S3_BUCKET)["PublicAccessBlockConfiguration"]

    assert [(r["Filter"]["Prefix"], r["Expiration"]["Days"]) for r in rules] == [("messages/", 15)]
    assert settings.SQS_DLQ_RETENTION_SECONDS < 15 * 86400  # longer than the DLQ keeps a task
    assert encryption[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(public.values())


def test_a_large_message_whose_body_expired_is_not_requeued(provisioned_queues, api_key):
    message = Message.objects.create(
        api_key=api_key[0],
        team=api_key[0].profile.team,
        status=Message.Status.FAILED,
        from_email="a@example.com",
        recipients="b@example.com",
        recipient_count=1,
        subject="old",
    )
    pointer = {
        claim_check.POINTER: {
            "bucket": settings.S3_BUCKET,
            "key": claim_check.key_for(str(message.pk)),
            "bytes": 1,
            "attachments": [],
        }
    }
    DeadLetter.objects.create(sqs_message_id=str(uuid.uuid4()), message=message, task_args=[str(message.pk), pointer, None])

    assert operator.requeue(message, "ops") is False  # nothing in S3 to send: refused, not failed again
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
