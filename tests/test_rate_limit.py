"""Per-key rate limits: 429 with Retry-After, one key's burst never limits another's."""

import json
import socket
import time

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from mail import keys
from mail.api.rate_limit import STORE_RETRY_SECONDS, STORE_TIMEOUT_SECONDS, RateLimiter, limiter_for, parse_rate
from mail.models import Message

URL = "/api/v1/messages"
BODY = {"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"}


@override_settings(API_RATE_LIMIT="3/min")
def test_a_key_over_its_limit_gets_429_with_retry_after_and_others_do_not(api_client, provisioned_queues):
    for _ in range(3):
        assert api_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 202
    limited = api_client.post(URL, data=json.dumps(BODY), content_type="application/json")
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "throttled"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert api_client.get("/api/v1/messages/00000000-0000-4000-8000-000000000000").status_code == 429

    _, other = keys.create("another client")
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert other_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 202


@override_settings(API_RATE_LIMIT="2/min", REDIS_URL="redis://127.0.0.1:6379/15")
def test_with_redis_the_count_is_kept_in_redis(api_client, provisioned_queues):
    # The count survives a fresh limiter in this process, as it would a second process.
    assert api_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 202
    limiter_for.cache_clear()
    assert api_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 202
    limiter_for.cache_clear()
    assert api_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 429


@override_settings(API_RATE_LIMIT="12/min")
def test_a_message_costs_a_unit_per_hundred_recipients_and_a_refused_charge_takes_nothing(api_client, provisioned_queues):
    big = {**BODY, "to": [f"r{i}@example.com" for i in range(1000)]}  # ten units
    assert api_client.post(URL, data=json.dumps(big), content_type="application/json").status_code == 202
    refused = api_client.post(URL, data=json.dumps(big), content_type="application/json")
    assert refused.status_code == 429, refused.content
    assert "costs 10 units" in refused.json()["error"]["message"]
    assert Message.objects.count() == 1
    # The refused ten were not taken: one more unit for this request and one for the message fit.
    assert api_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 202


@override_settings(API_RATE_LIMIT="50/min")
def test_a_batch_costs_the_sum_of_its_messages_all_or_nothing(api_client, provisioned_queues):
    batch = [BODY] * 30
    assert api_client.post(URL + "/batch", data=json.dumps(batch), content_type="application/json").status_code == 202
    refused = api_client.post(URL + "/batch", data=json.dumps(batch), content_type="application/json")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert Message.objects.count() == 30
    whole = api_client.post(URL + "/batch", data=json.dumps([BODY] * 60), content_type="application/json")
    assert whole.status_code == 429 and "whole limit of 50" in whole.json()["error"]["message"]


@override_settings(API_RATE_LIMIT="20/min")
def test_every_answer_to_a_key_carries_its_rate_limit_headers(api_client, provisioned_queues):
    def limits(response):
        return {
            name: response.get(name) for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")
        }

    sent = api_client.post(URL, data=json.dumps(BODY), content_type="application/json")
    assert sent.status_code == 202
    assert limits(sent)["RateLimit-Limit"] == "20" and limits(sent)["RateLimit-Policy"] == "20;w=60"
    assert limits(sent)["RateLimit-Remaining"] == "19"
    assert 1 <= int(limits(sent)["RateLimit-Reset"]) <= 60

    # A 404 paid for too; a batch of five messages of 150 recipients costs 2 units each.
    missing = api_client.get("/api/v1/messages/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and limits(missing)["RateLimit-Remaining"] == "18"
    heavy = {**BODY, "to": [f"r{i}@example.com" for i in range(150)]}
    batch = api_client.post(URL + "/batch", data=json.dumps([heavy] * 5), content_type="application/json")
    assert batch.status_code == 202 and limits(batch)["RateLimit-Remaining"] == "8"

    # Refused, with nothing taken: the headers say what is still left, and when it grows.
    refused = api_client.post(URL + "/batch", data=json.dumps([heavy] * 5), content_type="application/json")
    assert refused.status_code == 429
    assert limits(refused)["RateLimit-Remaining"] == "7" and int(limits(refused)["RateLimit-Reset"]) >= 1

    # An unauthenticated request pays nothing and is told nothing about a key.
    assert APIClient().post(URL, data=json.dumps(BODY), content_type="application/json").get("RateLimit-Limit") is None


def test_a_batch_over_the_recipient_cap_is_refused_before_its_addresses_are_parsed(api_client, provisioned_queues):
    message = {**BODY, "to": [f"r{i}@example.com" for i in range(1000)]}
    response = api_client.post(URL + "/batch", data=json.dumps([message] * 11), content_type="application/json")
    assert response.status_code == 400
    assert "at most 10000 recipients" in json.dumps(response.json())
    assert Message.objects.count() == 0


def test_the_rate_notation_is_checked():
    assert parse_rate("1200/min").amount == 1200
    for bad in ("", "x/min", "10/fortnight", "0/s"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_a_store_that_hangs_costs_one_short_wait_then_is_left_alone():
    listener = socket.socket()  # accepts connections and never answers, like a blackholed Redis
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    now = [0.0]
    limiter = RateLimiter(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", clock=lambda: now[0])
    started = time.monotonic()
    assert limiter.charge("5/min", "k").allowed  # counted in memory meanwhile
    assert time.monotonic() - started < 2
    started = time.monotonic()
    assert limiter.charge("5/min", "k").remaining == 3
    assert time.monotonic() - started < 0.1  # not asked again within STORE_RETRY_SECONDS
    now[0] += STORE_RETRY_SECONDS
    started = time.monotonic()
    limiter.charge("5/min", "k")
    assert time.monotonic() - started >= STORE_TIMEOUT_SECONDS * 0.9  # asked again, once
    listener.close()
