"""API keys remembered by a process for API_KEY_CACHE_SECONDS (mail/verified_keys.py, issue 21):
only the very key verified finds its entry, a revocation or a change reaches every API process
within the bound, and what depends on the clock or the client (expiry, network allow-list) is
checked on every request all the same. The rules on a clock the test moves; the rest through the
API against the real database, and across a real API's processes."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from mail import keys
from mail.models import ApiKeyProfile, Scope
from mail.verified_keys import VerifiedKeys

from .support import wait_until

MESSAGES = "/api/v1/messages"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Loads:
    """What load() answers, and every key it was asked for."""

    def __init__(self, answers: dict):
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, key):
        self.asked.append(key)
        return self.answers.get(key)


# --- the rules ------------------------------------------------------------------------------


def test_a_key_is_remembered_for_the_bound_then_read_again():
    clock, load = Clock(), Loads({"abc.right": "the key"})
    remembered = VerifiedKeys(clock=clock)
    assert remembered.get("abc.right", 10, load) == "the key"
    clock.now += 9.9
    assert remembered.get("abc.right", 10, load) == "the key"
    assert load.asked == ["abc.right"]
    clock.now += 0.1
    load.answers.clear()  # revoked meanwhile
    assert remembered.get("abc.right", 10, load) is None
    assert remembered.get("abc.right", 10, load) is None
    assert load.asked == ["abc.right"] * 3  # a refusal is not remembered


def test_only_the_whole_key_finds_its_entry():
    load = Loads({"abc.right": "the key"})
    remembered = VerifiedKeys(clock=Clock())
    assert remembered.get("abc.right", 10, load) == "the key"
    assert remembered.get("abc.wrong", 10, load) is None  # same prefix, another secret: asked, refused
    assert remembered.get("abc.right", 10, load) == "the key"
    assert load.asked == ["abc.right", "abc.wrong"]


def test_off_reads_every_time_and_the_memory_is_bounded():
    load = Loads({f"key{n}": n for n in range(5)})
    remembered = VerifiedKeys(max_keys=3, clock=Clock())
    assert [remembered.get("key0", 0, load) for _ in range(2)] == [0, 0]
    assert load.asked == ["key0", "key0"]
    for n in range(5):
        remembered.get(f"key{n}", 10, load)
    load.asked.clear()
    assert [remembered.get(f"key{n}", 10, load) for n in (4, 3, 2, 1)] == [4, 3, 2, 1]
    assert load.asked == ["key1"]  # the least recently used were forgotten


# --- through the API, against the database ------------------------------------------------------


def bearer(secret):
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def error_type(response):
    return response.json()["error"]["type"]


def test_a_wrong_secret_with_the_right_prefix_is_401_while_the_right_key_is_remembered(client, api_key):
    _, secret = api_key
    prefix = secret.partition(".")[0]
    one_character_off = secret[:-1] + ("y" if secret[-1] != "y" else "z")
    assert client.get(MESSAGES, **bearer(secret)).status_code == 200
    for wrong in (f"{prefix}.{'x' * 32}", one_character_off):
        response = client.get(MESSAGES, **bearer(wrong))
        assert response.status_code == 401 and error_type(response) == "authentication_failed"
    assert client.get(MESSAGES, **bearer(secret)).status_code == 200


def test_with_the_cache_off_a_revocation_is_immediate(client, api_key, settings):
    settings.API_KEY_CACHE_SECONDS = 0
    stored, secret = api_key
    assert client.get(MESSAGES, **bearer(secret)).status_code == 200
    keys.revoke(stored)
    assert client.get(MESSAGES, **bearer(secret)).status_code == 401


def test_a_revoked_key_is_refused_within_the_bound(client, api_key, settings):
    settings.API_KEY_CACHE_SECONDS = 1
    stored, secret = api_key
    assert client.get(MESSAGES, **bearer(secret)).status_code == 200
    keys.revoke(stored)
    wait_until(lambda: client.get(MESSAGES, **bearer(secret)).status_code == 401, timeout=1 + 5, what="a 401")


def test_a_scope_taken_away_is_refused_within_the_bound(client, api_key, settings):
    settings.API_KEY_CACHE_SECONDS = 1
    stored, secret = api_key
    assert client.get(MESSAGES, **bearer(secret)).status_code == 200
    ApiKeyProfile.objects.filter(api_key=stored).update(scopes=[Scope.MESSAGES_SEND])

    def refused():
        response = client.get(MESSAGES, **bearer(secret))
        return response.status_code == 403 and error_type(response) == "insufficient_scope"

    wait_until(refused, timeout=1 + 5, what="a 403 insufficient_scope")


def test_expiry_is_checked_on_every_request_while_remembered(client, db, settings):
    settings.API_KEY_CACHE_SECONDS = 3600  # the entry outlives the test: only the clock can refuse
    _, secret = keys.create("expiring", expires=timezone.now() + timedelta(seconds=1))
    assert client.get(MESSAGES, **bearer(secret)).status_code == 200

    def expired():
        response = client.get(MESSAGES, **bearer(secret))
        return response.status_code == 401 and error_type(response) == "key_expired"

    wait_until(expired, timeout=10, what="a 401 key_expired")


def test_the_allow_list_is_checked_on_every_request_while_remembered(client, db, settings):
    settings.API_KEY_CACHE_SECONDS = 3600
    _, secret = keys.create("office", networks=["127.0.0.1/32"])
    assert client.get(MESSAGES, **bearer(secret), REMOTE_ADDR="127.0.0.1").status_code == 200
    response = client.get(MESSAGES, **bearer(secret), REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 403 and error_type(response) == "address_not_allowed"
    assert client.get(MESSAGES, **bearer(secret), REMOTE_ADDR="127.0.0.1").status_code == 200


# --- across a real API's processes -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_revocation_reaches_every_api_process_within_the_bound(make_stack):
    bound = 2
    stack = make_stack(API_KEY_CACHE_SECONDS=str(bound))  # gunicorn's 3 worker processes

    def status():
        # A new connection each time, so the requests spread over the workers.
        return requests.get(f"{stack.api_url}{MESSAGES}", headers=stack.headers, timeout=10).status_code

    assert [status() for _ in range(12)] == [200] * 12
    keys.revoke(APIKey.objects.get(name="stack"))
    wait_until(lambda: all(status() == 401 for _ in range(12)), timeout=bound + 8, what="every worker refusing")
