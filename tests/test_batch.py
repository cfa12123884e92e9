"""POST /api/v1/messages/batch: up to 100 messages, validated all-or-nothing, each its own message,
queued with one SQS SendMessageBatch per 10; an SQS outage part-way answers for each message."""

import json
from datetime import timedelta

import pytest
import requests
from django.test import override_settings
from django.utils import timezone

from mail import queues
from mail.models import Message, Suppression

from .stack import accepted_per_message, mail_body, queued_message_ids

URL = "/api/v1/messages/batch"


def post(client, body, **headers):
    return client.post(URL, data=json.dumps(body), content_type="application/json", **headers)


def test_each_message_is_queued_as_its_own_in_order(api_client, empty_queues, sqs):
    bodies = [mail_body(f"receipt {n}", to=f"customer{n}@example.com") for n in range(3)]

    response = post(api_client, bodies)

    assert response.status_code == 202, response.content
    data = response.json()["data"]
    assert [item["status"] for item in data] == ["queued"] * 3
    ids = [item["id"] for item in data]
    assert [Message.objects.get(pk=i).subject for i in ids] == ["receipt 0", "receipt 1", "receipt 2"]
    assert sorted(queued_message_ids(sqs, empty_queues.queue_url)) == sorted(ids)


def test_one_invalid_message_refuses_the_batch_naming_its_index(api_client, empty_queues, sqs):
    bodies = [mail_body("fine"), mail_body("broken", to="not an address"), mail_body("fine too")]

    response = post(api_client, bodies)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert list(error["fields"]) == ["1"]
    assert "not a valid email address" in json.dumps(error["fields"]["1"]["to"])
    assert not Message.objects.exists()
    assert queued_message_ids(sqs, empty_queues.queue_url) == []


@pytest.mark.parametrize(
    "body, words",
    [
        ([], "may not be empty"),
        ([mail_body()] * 101, "no more than 100"),
        (mail_body(), "Expected a list"),
        (["not a message"], "Invalid data"),
    ],
    ids=["empty", "101 messages", "an object", "a string item"],
)
def test_a_body_that_is_not_a_list_of_1_to_100_messages_is_400(api_client, body, words):
    response = post(api_client, body)

    assert response.status_code == 400
    assert words in json.dumps(response.json()["error"]["fields"])
    assert not Message.objects.exists()


@override_settings(MAX_MESSAGE_BYTES=1000)
def test_an_oversized_message_is_413_naming_its_index(api_client):
    response = post(api_client, [mail_body(), mail_body(text="x" * 2000)])

    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("Message 1: ")
    assert not Message.objects.exists()


def test_a_suppressed_recipient_refuses_the_batch_naming_the_message(api_key, api_client, empty_queues, sqs):
    Suppression.objects.create(
        team=api_key[0].profile.team, address="gone@example.com", reason=Suppression.Reason.HARD_BOUNCE, provider="sendgrid"
    )

    response = post(api_client, [mail_body("fine"), mail_body("to the bounced", to="Gone@example.com")])

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "recipient_suppressed"
    assert error["message"].startswith("Message 1: some recipients")
    assert list(error["fields"]) == ["1"] and "Gone@example.com is suppressed" in error["fields"]["1"]["to"][0]
    assert not Message.objects.exists()
    assert queued_message_ids(sqs, empty_queues.queue_url) == []


def test_a_scheduled_message_in_a_batch_is_held_the_others_queued(api_client, empty_queues, sqs):
    later = (timezone.now() + timedelta(hours=2)).isoformat()

    response = post(api_client, [mail_body("now"), mail_body("later", send_at=later)])

    assert response.status_code == 202
    now_item, later_item = response.json()["data"]
    assert (now_item["status"], later_item["status"]) == ("queued", "scheduled")
    assert queued_message_ids(sqs, empty_queues.queue_url) == [now_item["id"]]


def test_a_retried_batch_with_the_same_idempotency_key_queues_nothing_more(api_client, empty_queues):
    bodies = [mail_body("a"), mail_body("b")]

    first = post(api_client, bodies, HTTP_IDEMPOTENCY_KEY="batch-1")
    again = post(api_client, bodies, HTTP_IDEMPOTENCY_KEY="batch-1")
    other_body = post(api_client, [mail_body("c")], HTTP_IDEMPOTENCY_KEY="batch-1")

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert other_body.status_code == 409
    assert Message.objects.count() == 2


def test_batches_are_cut_at_ten_entries_and_at_the_size_limit():
    small = [{"Id": str(n), "MessageBody": "x" * 100} for n in range(25)]
    assert [len(chunk) for chunk in queues._chunks(small)] == [10, 10, 5]

    # Three bodies of 40 % of the limit: two fit one call, the third needs another.
    large = [{"Id": str(n), "MessageBody": "x" * int(0.4 * queues.settings.SQS_MAX_MESSAGE_BYTES)} for n in range(3)]
    assert [len(chunk) for chunk in queues._chunks(large)] == [2, 1]


# --- through a real API process, with SQS behind a proxy that counts and fails calls ----------


def post_batch(stack, bodies) -> requests.Response:
    return requests.post(f"{stack.api_url}{URL}", json=bodies, headers=stack.headers, timeout=60)


def stack_queue_ids(stack) -> list[str]:
    return queued_message_ids(stack.sqs, stack.queue_url)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_25_messages_take_three_send_message_batch_calls(make_stack, sqs_proxy):
    stack = make_stack(SQS_ENDPOINT_URL=sqs_proxy.url)

    response = post_batch(stack, [mail_body(f"n{n}") for n in range(25)])

    assert response.status_code == 202, response.text
    assert sqs_proxy.calls["SendMessageBatch"] == 3
    assert sqs_proxy.calls["SendMessage"] == 0
    assert sorted(stack_queue_ids(stack)) == sorted(item["id"] for item in response.json()["data"])


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_sqs_outage_part_way_answers_207_and_keeps_what_was_queued(make_stack, sqs_proxy):
    stack = make_stack(SQS_ENDPOINT_URL=sqs_proxy.url)
    sqs_proxy.fail("SendMessageBatch", after=1)  # the first ten go out, then SQS fails

    response = post_batch(stack, [mail_body(f"n{n}") for n in range(15)])

    assert response.status_code == 207, response.text
    data = response.json()["data"]
    accepted, refused = data[:10], data[10:]
    assert all(item["status"] == "queued" for item in accepted)
    assert all(item == {"error": {"type": "queue_unavailable", "message": refused[0]["error"]["message"]}} for item in refused)
    accepted_ids = sorted(item["id"] for item in accepted)
    # What the client was told is what exists: the refused five left nothing behind.
    assert sorted(str(pk) for pk in Message.objects.values_list("pk", flat=True)) == accepted_ids
    assert sorted(stack_queue_ids(stack)) == accepted_ids


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_when_sqs_takes_none_the_batch_is_503_and_nothing_is_kept(make_stack, sqs_proxy):
    stack = make_stack(SQS_ENDPOINT_URL=sqs_proxy.url)
    sqs_proxy.fail("SendMessageBatch")

    response = post_batch(stack, [mail_body("a"), mail_body("b")])

    assert response.status_code == 503
    assert response.json()["error"]["type"] == "queue_unavailable"
    assert response.headers["Retry-After"]
    assert not Message.objects.exists()
    assert stack_queue_ids(stack) == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_batch_is_delivered_by_a_worker_once_each(make_stack, simulator):
    stack = make_stack()
    response = post_batch(stack, [mail_body(f"batch {n}", to=f"c{n}@example.com") for n in range(12)])
    assert response.status_code == 202
    ids = [item["id"] for item in response.json()["data"]]

    stack.start_worker()

    for message_id in ids:
        assert stack.wait_for_status(message_id, "sent")["provider"] == "sendgrid"
    assert accepted_per_message(simulator) == {message_id: 1 for message_id in ids}
