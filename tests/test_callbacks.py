"""Callbacks in one process: the address rules against server-side request forgery, the retry
decisions, the endpoints' API (a key manages only its own; the secret shown once and stored
encrypted; a test event on create), rotation's double signature, and the outbox row written in
the event's own transaction. The end-to-end behaviour with real processes is
tests/test_callbacks_delivery.py."""

import ipaddress
import json
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from mail import keys
from mail.callbacks import delivering, destination, endpoints, outbox, sender, signing
from mail.callbacks.delivering import Done, GiveUp, RetryIn, decide
from mail.callbacks.models import Attempt, Delivery, Endpoint
from mail.models import MessageEvent

from .callback_receiver import Receiver
from .support import sent_message

LOCAL = {"CALLBACK_ALLOWED_NETWORKS": ["127.0.0.1/32"], "CALLBACK_ALLOW_HTTP": True}


def resolver_of(*addresses):
    return lambda host, port: list(addresses)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://10.1.2.3/", "private"),
        ("https://[::1]:8443/", "loopback"),
        ("https://[::ffff:10.0.0.7]/", "private"),
        ("https://192.168.1.10/", "private"),
        ("https://0.0.0.0/", "unspecified"),
    ],
)
def test_non_public_addresses_are_refused(url, reason):
    host = urlsplit(url).hostname
    checked = destination.check(url, allow_http=False, resolver=resolver_of(host))
    assert isinstance(checked, destination.Refused) and reason in checked.reason


def test_a_name_is_refused_when_any_address_it_resolves_to_is_private():
    checked = destination.check(
        "https://hooks.example.com/x", allow_http=False, resolver=resolver_of("93.184.216.34", "10.0.0.5")
    )
    assert isinstance(checked, destination.Refused) and "hooks.example.com resolves to 10.0.0.5" in checked.reason


def test_a_public_address_is_the_one_connected_to_and_an_allowed_network_passes():
    checked = destination.check("https://hooks.example.com:8443/in?x=1", allow_http=False, resolver=resolver_of("93.184.216.34"))
    assert checked == destination.Destination("https", "hooks.example.com", 8443, "/in?x=1", "93.184.216.34")
    allowed = (ipaddress.ip_network("127.0.0.1/32"),)
    assert isinstance(destination.check("http://127.0.0.1:9/", allow_http=True, allowed=allowed), destination.Destination)
    # Precise: the rest of the loopback range stays refused.
    assert isinstance(destination.check("http://127.0.0.2:9/", allow_http=True, allowed=allowed), destination.Refused)


def test_an_international_name_is_connected_to_as_idna_and_ipv4_comes_first():
    checked = destination.check("https://bücher.example/in", allow_http=False, resolver=resolver_of("93.184.216.34"))
    assert checked.host == "xn--bcher-kva.example"
    refused = destination.check("https://a\u2028b.example/", allow_http=False, resolver=resolver_of("93.184.216.34"))
    assert isinstance(refused, destination.Refused) and "not a valid host name" in refused.reason
    both = destination.check(
        "https://hooks.example.com/", allow_http=False, resolver=lambda host, port: ["93.184.216.34", "2606:2800:220:1::1"]
    )
    assert both.address == "93.184.216.34"


def test_plain_http_and_credentials_are_refused():
    assert (
        "https" in destination.check("http://hooks.example.com/", allow_http=False, resolver=resolver_of("93.184.216.34")).reason
    )
    assert "credentials" in destination.check("https://u:p@hooks.example.com/", allow_http=False).reason


def test_retries_follow_the_schedule_only_for_retryable_outcomes():
    schedule = [5, 300, 1800]
    timeout = sender.Outcome(False, True, error="timeout: ReadTimeoutError")
    assert decide(timeout, 1, schedule) == RetryIn(5)
    assert decide(timeout, 3, schedule) == RetryIn(1800)
    assert isinstance(decide(timeout, 4, schedule), GiveUp)
    assert decide(sender.Outcome(True, False, status_code=204), 1, schedule) == Done()
    for status in (408, 429, 500, 503):
        assert sender.classify(status) == (False, True)
    for status in (301, 400, 401, 404, 410):
        assert sender.classify(status) == (False, False)
    assert isinstance(decide(sender.Outcome(False, False, status_code=404, error="HTTP 404"), 1, schedule), GiveUp)


def test_rotation_signs_with_both_secrets_during_the_overlap(db, api_key):
    endpoint, old = endpoints.create(api_key[0], "https://hooks.example.com/", [], "", True)
    new = endpoints.rotate_secret(endpoint)
    body = '{"id":"evt_1"}'
    headers = signing.headers("evt_1", body, signing.live_secrets(endpoint), timezone.now())
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers) == {"id": "evt_1"}
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


# --- the API -------------------------------------------------------------------------------
@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hooks",
        "https://[::1]/hooks",
        "https://localhost/hooks",  # a name resolving to a loopback address
        "http://hooks.example.com/",  # plain http, not allowed here
        "ftp://hooks.example.com/",
    ],
)
def test_an_endpoint_at_a_forbidden_address_is_refused_with_a_400(api_client, url):
    response = api_client.post("/api/v1/webhooks", {"url": url}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["type"] == "validation_error" and "url" in response.json()["error"]["fields"]
    assert not Endpoint.objects.exists()


def test_endpoints_belong_to_their_key_and_the_secret_is_shown_once_and_kept_encrypted(api_client, settings, receiver):
    for name, value in LOCAL.items():
        setattr(settings, name, value)
    created = api_client.post(
        "/api/v1/webhooks",
        {"url": receiver.url, "event_types": ["message.delivered", "message.sent"], "description": "shop"},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and body["event_types"] == ["message.delivered", "message.sent"]
    # The test event reached the receiver, signed with the secret just shown.
    assert body["test"] == {"delivered": True, "status_code": 200, "error": ""}
    (test_event,) = receiver.received
    assert test_event.verified_with(secret)["type"] == "webhook.test"

    shown = api_client.get(f"/api/v1/webhooks/{body['id']}").json()
    assert "secret" not in shown and shown["url"] == receiver.url
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM callbacks_endpoint")
        (stored,) = cursor.fetchone()
    assert secret not in stored and secret.removeprefix("whsec_") not in stored

    _, other_key = keys.create("another client")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    for method, path in [
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("post", "/rotate-secret"),
        ("get", "/deliveries"),
    ]:
        assert getattr(other, method)(f"/api/v1/webhooks/{body['id']}{path}", {}, format="json").status_code == 404
    assert other.get("/api/v1/webhooks").json() == []
    assert [e["id"] for e in api_client.get("/api/v1/webhooks").json()] == [body["id"]]

    # Disabled, then re-enabled: a test event again, its outcome reported.
    receiver.answer(503)
    assert api_client.patch(f"/api/v1/webhooks/{body['id']}", {"enabled": False}, format="json").json()["enabled"] is False
    again = api_client.patch(f"/api/v1/webhooks/{body['id']}", {"enabled": True}, format="json").json()
    assert again["test"] == {"delivered": False, "status_code": 503, "error": "HTTP 503"}
    assert api_client.patch(f"/api/v1/webhooks/{body['id']}", {"event_types": ["message.nope"]}, format="json").status_code == 400
    assert api_client.delete(f"/api/v1/webhooks/{body['id']}").status_code == 204
    assert not Endpoint.objects.exists()


def test_a_redirect_is_not_followed(api_client, settings, receiver):
    for name, value in LOCAL.items():
        setattr(settings, name, value)
    receiver.answer(302, location="http://169.254.169.254/latest/meta-data/")
    body = api_client.post("/api/v1/webhooks", {"url": receiver.url}, format="json").json()
    assert body["test"]["delivered"] is False and body["test"]["status_code"] == 302
    assert "not followed" in body["test"]["error"] and len(receiver.received) == 1


@pytest.mark.django_db(transaction=True)
def test_the_outbox_row_is_written_in_the_events_transaction_and_only_for_wanted_types(api_key):
    all_events, _ = endpoints.create(api_key[0], "https://hooks.example.com/a", [], "", True)
    delivered_only, _ = endpoints.create(api_key[0], "https://hooks.example.com/b", ["message.delivered"], "", True)
    endpoints.create(api_key[0], "https://hooks.example.com/c", [], "", False)  # disabled: nothing
    message = sent_message(api_key[0])
    message.tags, message.metadata = ["receipts"], {"order": "42"}
    message.save()

    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.record([MessageEvent.objects.create(message=message, type=MessageEvent.Type.DELIVERED)])
        raise RuntimeError("the event's transaction fails")
    assert not Delivery.objects.exists()

    with transaction.atomic():
        delivered = MessageEvent.objects.create(
            message=message, type=MessageEvent.Type.DELIVERED, provider="sendgrid", recipient="ann@example.com"
        )
        outbox.record([delivered, MessageEvent.objects.create(message=message, type=MessageEvent.Type.SENT, provider="sendgrid")])
        outbox.record([MessageEvent.objects.create(message=message, type=MessageEvent.Type.WAITING)])  # not a callback
    rows = sorted((d.endpoint_id == all_events.id, d.event_type) for d in Delivery.objects.all())
    assert rows == [(False, "message.delivered"), (True, "message.delivered"), (True, "message.sent")]
    payload = Delivery.objects.filter(endpoint=delivered_only).get().payload
    assert payload["type"] == "message.delivered" and payload["id"].startswith("evt_")
    assert payload["data"] == {
        "message_id": str(message.id),
        "provider": "sendgrid",
        "recipient": "ann@example.com",
        "tags": ["receipts"],
        "metadata": {"order": "42"},
        "detail": "",
    }
    # One event, one id, whichever endpoint it goes to.
    assert len({d.event_id for d in Delivery.objects.filter(event_type="message.delivered")}) == 1
    json.dumps(payload)


@pytest.mark.django_db(transaction=True)
def test_a_revoked_or_expired_keys_endpoints_hear_nothing_more(api_key):
    endpoint, _ = endpoints.create(api_key[0], "https://hooks.example.com/a", [], "", True)
    message = sent_message(api_key[0])
    api_key[0].expiry_date = timezone.now() - timedelta(minutes=1)
    api_key[0].save()
    outbox.record([MessageEvent.objects.create(message=message, type=MessageEvent.Type.DELIVERED)])
    assert not Delivery.objects.exists()

    api_key[0].expiry_date = None
    api_key[0].save()
    keys.revoke(api_key[0])
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == keys.REVOKED_DETAIL
    endpoints.update(endpoint, enabled=True)  # even re-enabled by hand, a revoked key's endpoint hears nothing
    outbox.record([MessageEvent.objects.create(message=message, type=MessageEvent.Type.BOUNCED)])
    assert not Delivery.objects.exists()


def test_a_key_has_a_bounded_number_of_endpoints(api_client, api_key, settings):
    settings.CALLBACK_MAX_ENDPOINTS_PER_KEY = 2
    for letter in "ab":
        endpoints.create(api_key[0], f"https://hooks.example.com/{letter}", [], "", False)
    refused = api_client.post("/api/v1/webhooks", {"url": "https://hooks.example.com/c", "enabled": False}, format="json")
    assert refused.status_code == 400 and "the most it may have" in json.dumps(refused.json())


# --- the worker's rules, without the worker ------------------------------------------------
def test_deliveries_to_one_endpoint_are_bounded_in_flight(db, api_key, settings):
    settings.CALLBACK_ENDPOINT_CONCURRENCY = 1
    endpoint, _ = endpoints.create(api_key[0], "https://hooks.example.com/", [], "", True)
    first, second = (
        Delivery.objects.create(endpoint=endpoint, event_id=f"evt_{n}", event_type="message.sent", payload={}) for n in (1, 2)
    )
    claim = delivering.take(str(first.pk))
    assert isinstance(claim, delivering.Claim) and claim.delivery.attempts == 1
    assert isinstance(delivering.take(str(second.pk)), delivering.Busy)
    assert delivering.take(str(first.pk)) is None  # held: a duplicate task does nothing


def test_an_endpoint_failing_for_days_is_disabled_with_its_reason(db, api_key, settings):
    endpoint, _ = endpoints.create(api_key[0], "https://hooks.example.com/", [], "", True)
    Endpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(days=5, minutes=1))
    delivery = Delivery.objects.create(endpoint=endpoint, event_id="evt_1", event_type="message.sent", payload={})
    claim = delivering.take(str(delivery.pk))
    result = sender.Outcome(False, True, status_code=503, error="HTTP 503")
    delivering.carry_out(claim, result, delivering.decide(result, 1, [5]), timezone.now())
    endpoint.refresh_from_db()
    assert not endpoint.enabled and "HTTP 503" in endpoint.disabled_reason
    assert Attempt.objects.get(delivery=delivery).outcome == "retrying"


def test_a_long_wait_is_held_in_the_database_and_released_by_housekeeping(db, api_key, provisioned_queues):
    endpoint, _ = endpoints.create(api_key[0], "https://hooks.example.com/", [], "", True)
    soon, later = (
        Delivery.objects.create(
            endpoint=endpoint,
            event_id=f"evt_{n}",
            event_type="message.sent",
            payload={},
            next_attempt_at=timezone.now() + wait,
        )
        for n, wait in ((1, timedelta(minutes=10)), (2, timedelta(hours=2)))
    )
    assert outbox.release_due() == 1
    soon.refresh_from_db(), later.refresh_from_db()
    assert soon.queued_at is not None and later.queued_at is None
    assert outbox.release_due() == 0  # published once


def test_the_admin_replays_every_failed_delivery_in_a_time_window(operator, api_key, provisioned_queues):
    endpoint, _ = endpoints.create(api_key[0], "https://hooks.example.com/", [], "", True)
    now = timezone.now()
    inside, outside, succeeded = (
        Delivery.objects.create(endpoint=endpoint, event_id=f"evt_{n}", event_type="message.sent", payload={}, status=status)
        for n, status in ((1, "failed"), (2, "failed"), (3, "succeeded"))
    )
    Delivery.objects.filter(pk=outside.pk).update(created_at=now - timedelta(days=3))
    changelist = "/admin/callbacks/endpoint/"
    form = operator.post(changelist, {"action": "replay_failed_in_window", "_selected_action": [str(endpoint.pk)]})
    assert form.status_code == 200 and b'name="since"' in form.content
    done = operator.post(
        changelist,
        {
            "action": "replay_failed_in_window",
            "_selected_action": [str(endpoint.pk)],
            "apply": "1",
            "since": (now - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S"),
            "until": (now + timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S"),
        },
        follow=True,
    )
    assert b"Replayed 1 failed deliveries." in done.content
    statuses = dict(Delivery.objects.values_list("event_id", "status"))
    assert statuses == {"evt_1": "pending", "evt_2": "failed", "evt_3": "succeeded"}
    assert Delivery.objects.get(pk=inside.pk).queued_at is not None
    # The deliveries' page lists them, with their attempts inline.
    assert operator.get(f"/admin/callbacks/delivery/{succeeded.pk}/change/").status_code == 200
    assert operator.get("/admin/callbacks/endpoint/").status_code == 200


def test_metrics_count_attempts_by_outcome_and_the_outbox_age(client, api_key, settings, provisioned_queues):
    settings.METRICS_TOKEN = "scrape"
    endpoint, _ = endpoints.create(api_key[0], "https://hooks.example.com/", [], "", True)
    waiting = Delivery.objects.create(endpoint=endpoint, event_id="evt_1", event_type="message.sent", payload={})
    Delivery.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    done = Delivery.objects.create(endpoint=endpoint, event_id="evt_2", event_type="message.sent", payload={}, status="succeeded")
    Attempt.objects.create(delivery=done, number=1, outcome="succeeded", status_code=200)
    Attempt.objects.create(delivery=waiting, number=1, outcome="retrying", error="HTTP 503")
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape").content.decode()
    assert 'mailer_callback_attempts_total{outcome="succeeded"} 1.0' in text
    assert 'mailer_callback_attempts_total{outcome="retrying"} 1.0' in text
    assert 'mailer_callbacks{status="pending"} 1.0' in text
    (age,) = [line for line in text.splitlines() if line.startswith("mailer_callback_outbox_oldest_seconds ")]
    assert 590 < float(age.split()[1]) < 700
