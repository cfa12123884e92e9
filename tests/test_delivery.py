"""The whole path through real boundaries: HTTP into the API, the real SQS-compatible server, a
real Celery worker process, the provider simulator over HTTP."""

import base64
import json

import pytest

from mail import keys
from mail.delivery_task import DeliveryTask
from mail.models import Message, Team

from .support import drain, wait_until
from .test_delivery_task import BEFORE_RESHAPE
from .test_sendgrid import validate_against_sendgrid_spec

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FULL_BODY = {
    "from": '"Zoë, Sales" <sales@example.com>',
    "to": ["Ann <ann@example.com>", "bob@exämple.com"],
    "cc": "Carol <carol@example.com>",
    "bcc": ["dave@example.com"],
    "reply_to": ["Support <support@example.com>", "help@example.com"],
    "subject": "Your order №42 — 日本",
    "text": "Thanks for your order.",
    "html": '<p>Thanks for your order.</p><img src="cid:logo">',
    "attachments": [
        {"filename": "invoice.pdf", "content": base64.b64encode(b"%PDF-1.4 fake").decode(), "content_type": "application/pdf"},
        {"filename": "logo.png", "content": base64.b64encode(b"\x89PNG fake").decode(), "inline": True, "content_id": "logo"},
    ],
    "headers": {"X-Campaign": "autumn"},
    "tags": ["orders"],
    "metadata": {"order_id": "42"},
}


def get_message(api_client, message_id):
    response = api_client.get(f"/api/v1/messages/{message_id}")
    assert response.status_code == 200
    return response.json()


def wait_for_status(api_client, message_id, status):
    return wait_until(
        lambda: (data := get_message(api_client, message_id))["status"] == status and data,
        timeout=30,
        what=f"message {message_id} to be {status}",
    )


def test_posted_message_reaches_sendgrid_with_every_field(api_client, worker, simulator, empty_queues):
    response = api_client.post("/api/v1/messages", data=json.dumps(FULL_BODY), content_type="application/json")
    assert response.status_code == 202, response.content
    message_id = response.json()["id"]
    assert response.json() == {"id": message_id, "status": "queued"}
    assert response["Location"] == f"/api/v1/messages/{message_id}"

    sent = wait_for_status(api_client, message_id, "sent")

    (request,) = simulator.requests("sendgrid")
    payload = request["json"]
    validate_against_sendgrid_spec(payload, request["headers"]["Authorization"])
    assert payload["from"] == {"email": "sales@example.com", "name": "Zoë, Sales"}
    (personalization,) = payload["personalizations"]
    assert personalization["to"] == [{"email": "ann@example.com", "name": "Ann"}, {"email": "bob@xn--exmple-cua.com"}]
    assert personalization["cc"] == [{"email": "carol@example.com", "name": "Carol"}]
    assert personalization["bcc"] == [{"email": "dave@example.com"}]
    assert personalization["custom_args"] == {"order_id": "42", "mailer_message_id": message_id}
    assert payload["reply_to_list"] == [{"email": "support@example.com", "name": "Support"}, {"email": "help@example.com"}]
    assert payload["subject"] == FULL_BODY["subject"]
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    assert [(a["filename"], a["type"], a["disposition"], a.get("content_id")) for a in payload["attachments"]] == [
        ("invoice.pdf", "application/pdf", "attachment", None),
        ("logo.png", "image/png", "inline", "logo"),
    ]
    assert base64.b64decode(payload["attachments"][0]["content"]) == b"%PDF-1.4 fake"
    assert payload["headers"] == {"X-Campaign": "autumn"}
    assert payload["categories"] == ["orders"]

    assert sent["provider"] == "sendgrid"
    assert sent["provider_message_id"] == request["provider_message_id"]
    assert sent["attempts"] == 1
    assert sent["recipient_count"] == 4
    assert sent["sent_at"] is not None
    assert [(e["type"], e["provider"]) for e in sent["events"]] == [("queued", ""), ("sent", "sendgrid")]


def queue_is_empty(sqs, queue_url):
    counts = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return all(value == "0" for value in counts.values())


def test_a_redelivered_task_of_a_sent_message_does_not_send_again(api_client, worker, simulator, empty_queues, sqs):
    body = {"from": "a@example.com", "to": "b@example.com", "subject": "once", "text": "only once"}
    message_id = api_client.post("/api/v1/messages", data=json.dumps(body), content_type="application/json").json()["id"]
    wait_for_status(api_client, message_id, "sent")
    wait_until(lambda: queue_is_empty(sqs, empty_queues.queue_url), what="the first delivery to be acked")

    # SQS delivers at least once: the same task arrives again.
    DeliveryTask(
        message_id, {"from": {"email": "a@example.com"}, "to": [{"email": "b@example.com"}], "subject": "once", "text": "x"}
    ).publish()
    wait_until(lambda: queue_is_empty(sqs, empty_queues.queue_url), what="the duplicate to be acked")

    assert len(simulator.requests("sendgrid")) == 1
    assert Message.objects.get(pk=message_id).attempts == 1


def test_a_key_cannot_read_another_teams_message(api_client, client, worker, simulator, empty_queues):
    body = {"from": "a@example.com", "to": "b@example.com", "subject": "mine", "text": "x"}
    message_id = api_client.post("/api/v1/messages", data=json.dumps(body), content_type="application/json").json()["id"]
    _, other_key = keys.create("someone else", Team.objects.create(name="another team"))
    response = client.get(f"/api/v1/messages/{message_id}", HTTP_AUTHORIZATION=f"Bearer {other_key}")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_tasks_queued_by_the_release_before_are_delivered(empty_queues, sqs, worker, simulator, api_key):
    drain(sqs, empty_queues.queue_url)
    for captured in BEFORE_RESHAPE:
        Message.objects.create(
            id=captured["message_id"],
            api_key=api_key[0],
            team=api_key[0].profile.team,
            from_email="shop@example.com",
            recipients="ann@example.com",
            recipient_count=1,
            subject="s",
        )
        sqs.send_message(QueueUrl=empty_queues.queue_url, MessageBody=captured["sqs_body"])

    for captured in BEFORE_RESHAPE:
        message = wait_until(
            lambda c=captured: (m := Message.objects.get(pk=c["message_id"])).status == "sent" and m,
            timeout=60,
            what="the old task to be sent",
        )
        assert message.provider == (captured["provider"] or "sendgrid") and message.step == captured["step"]
    sent_ids = sorted(
        r["json"]["personalizations"][0]["custom_args"]["mailer_message_id"]
        if r["provider"] == "sendgrid"
        else r["form"]["v:mailer_message_id"][0]
        for r in simulator.requests(accepted=True)
    )
    assert sent_ids == sorted(c["message_id"] for c in BEFORE_RESHAPE)
