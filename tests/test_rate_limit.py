"""Per-key rate limits: 429 with Retry-After, one key's burst never limits another's."""

import json

import pytest
from django.core.cache import cache
from django.test import override_settings
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

URL = "/api/v1/messages"
BODY = {"from": "a@example.com", "to": "b@example.com", "subject": "s", "text": "t"}


@pytest.fixture(autouse=True)
def fresh_counts():
    cache.clear()
    yield
    cache.clear()


@override_settings(API_RATE_LIMIT="3/min")
def test_a_key_over_its_limit_gets_429_with_retry_after_and_others_do_not(api_client, provisioned_queues):
    for _ in range(3):
        assert api_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 202
    limited = api_client.post(URL, data=json.dumps(BODY), content_type="application/json")
    assert limited.status_code == 429
    assert limited.json()["error"]["type"] == "throttled"
    assert 0 < int(limited["Retry-After"]) <= 60
    assert api_client.get("/api/v1/messages/00000000-0000-4000-8000-000000000000").status_code == 429

    _, other = APIKey.objects.create_key(name="another client")
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert other_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 202


@override_settings(
    API_RATE_LIMIT="2/min",
    CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/15"}},
)
def test_with_redis_the_count_is_shared(api_client, provisioned_queues):
    # Two API processes share Redis; here the count survives a fresh local cache, as it would a
    # second process.
    from django.core.cache import caches

    caches["default"].clear()
    assert api_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 202
    assert api_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 202
    assert api_client.post(URL, data=json.dumps(BODY), content_type="application/json").status_code == 429
    caches["default"].clear()
