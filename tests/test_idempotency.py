"""Idempotency-Key (docs/architecture.md, guarantee 2): client retries are safe."""

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from mail import keys
from mail.api import idempotency
from mail.models import IdempotencyRecord, Message

from .stack import mail_body

URL = "/api/v1/messages"
BODY = {"from": "a@example.com", "to": "b@example.com", "subject": "once", "text": "only once"}


def post(client, body, key):
    return client.post(URL, data=json.dumps(body), content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.fixture(autouse=True)
def queues_ready(provisioned_queues):
    return provisioned_queues


def test_a_retry_with_the_same_key_gets_the_first_answer_and_queues_nothing(api_client):
    first = post(api_client, BODY, "order-42")
    again = post(api_client, dict(reversed(list(BODY.items()))), "order-42")  # same body, keys reordered
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Message.objects.count() == 1


def test_the_same_key_with_another_body_is_409(api_client):
    post(api_client, BODY, "order-42")
    response = post(api_client, {**BODY, "subject": "something else"}, "order-42")
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "idempotency_conflict"
    assert Message.objects.count() == 1


@pytest.mark.parametrize("key", ["k" * 256, "", "tab\there"], ids=["256 characters", "empty", "control character"])
def test_a_bad_key_is_400(api_client, key):
    response = post(api_client, BODY, key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert not Message.objects.exists()


def test_keys_belong_to_one_api_key(api_client, db):
    _, other = keys.create("another client")
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert post(api_client, BODY, "shared-name").status_code == 202
    assert post(other_client, BODY, "shared-name").status_code == 202
    assert Message.objects.count() == 2


def test_a_key_older_than_24_hours_is_forgotten(api_client):
    post(api_client, BODY, "order-42")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert "Idempotent-Replayed" not in post(api_client, BODY, "order-42")
    assert Message.objects.count() == 2
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency.purge_expired() == 1


def test_a_503_leaves_the_key_free_for_the_retry(api_client):
    with override_settings(SQS_QUEUE_NAME="not-provisioned"):
        assert post(api_client, BODY, "order-42").status_code == 503
    retry = post(api_client, BODY, "order-42")
    assert retry.status_code == 202 and "Idempotent-Replayed" not in retry
    assert Message.objects.count() == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_make_exactly_one_message(make_stack):
    stack = make_stack()
    headers = {**stack.headers, "Idempotency-Key": "checkout-7"}

    def send(_):
        return requests.post(f"{stack.api_url}{URL}", json=mail_body("race"), headers=headers, timeout=30)

    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(send, range(20)))
    codes = [r.status_code for r in responses]
    assert set(codes) <= {202, 409} and 202 in codes
    assert len({r.json()["id"] for r in responses if r.status_code == 202}) == 1
    assert Message.objects.filter(subject="race").count() == 1
