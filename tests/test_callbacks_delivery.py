"""Callbacks end to end with real processes: the API, the mail worker and the callbacks' own
worker on the embedded SQS server, the provider simulator, and a client's receiver served by
this test on the loopback (reachable only because CALLBACK_ALLOWED_NETWORKS allows exactly
127.0.0.1). One stack for the module; each test has an API key of its own."""

import collections
import json
import os
import signal
import time

import pytest
import requests

from mail import keys
from mail.callbacks.models import Attempt, Delivery

from .callback_receiver import Receiver
from .stack import Stack, mail_body
from .support import Simulator, wait_until
from .webhook_signing import SendGridSigner, sendgrid_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Retry waits of seconds, a 1 s read timeout (the "hanging" receiver outlasts it), a 3 s lease
# and a 5 s visibility timeout (a killed worker's callbacks come back within seconds).
CALLBACK_ENV = {
    "CALLBACK_ALLOWED_NETWORKS": "127.0.0.1/32",
    "CALLBACK_ALLOW_HTTP": "true",
    "CALLBACK_RETRY_SCHEDULE": "1,1,2,2,3,3,3",
    "CALLBACK_CONNECT_TIMEOUT": "1",
    "CALLBACK_READ_TIMEOUT": "1",
    "CALLBACK_LEASE_SECONDS": "3",
    "CALLBACK_VISIBILITY_TIMEOUT": "5",
    "CALLBACK_BUSY_DELAY_SECONDS": "1",
}


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    signer = SendGridSigner()
    with django_db_blocker.unblock():
        stack = Stack(tmp_path_factory.mktemp("callbacks"), SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key_b64, **CALLBACK_ENV)
    stack.signer = signer
    Simulator().reset()
    stack.start_api()
    stack.start_worker()
    stack.callback_worker = stack.start_worker(WORKER_CONSUMES="callbacks")
    yield stack
    stack.stop()


@pytest.fixture
def client(stack):
    """The stack, speaking with an API key of this test's own."""
    _, key = keys.create("callbacks client")
    stack.headers = {"Authorization": f"Bearer {key}"}
    return stack


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


def api(stack, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{stack.api_url}/api/v1/webhooks{path}", headers=stack.headers, timeout=30, **kwargs)


def create_endpoint(stack, url: str, **fields) -> dict:
    response = api(stack, "POST", "", json={"url": url, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def provider_delivered(stack, message_id: str) -> None:
    """SendGrid's signed `delivered` event for this message, posted to our webhook."""
    (request,) = [
        r
        for r in Simulator().requests("sendgrid", accepted=True)
        if r["json"]["personalizations"][0]["custom_args"]["mailer_message_id"] == message_id
    ]
    custom_args = request["json"]["personalizations"][0]["custom_args"]
    body = json.dumps([{**sendgrid_event("", "delivered", email="ann@example.com"), **custom_args}]).encode()
    headers = {"Content-Type": "application/json", **stack.signer.headers(body)}
    assert requests.post(f"{stack.api_url}/webhooks/sendgrid", data=body, headers=headers, timeout=10).status_code == 200


def all_delivered(endpoint_id: str, count: int):
    rows = list(Delivery.objects.filter(endpoint_id=endpoint_id).values_list("event_id", "status"))
    return len(rows) == count and all(status == Delivery.Status.SUCCEEDED for _, status in rows) and {e for e, _ in rows}


def test_sent_and_delivered_arrive_signed_and_can_be_listed_replayed_and_rotated(client, receiver):
    endpoint = create_endpoint(client, receiver.url, event_types=["message.sent", "message.delivered"], description="shop")
    secret = endpoint["secret"]
    assert endpoint["test"]["delivered"] is True

    message_id = client.post(mail_body(tags=["receipts"], metadata={"order": "42"}))
    client.wait_for_status(message_id, "sent")
    provider_delivered(client, message_id)
    wait_until(lambda: len(receiver.events("message.delivered")) == 1, timeout=30, what="message.delivered")
    (sent,), (delivered,) = receiver.events("message.sent"), receiver.events("message.delivered")
    for received, recipient in ((sent, ""), (delivered, "ann@example.com")):
        payload = received.verified_with(secret)  # only the secret the API showed
        assert payload["data"] == {
            "message_id": message_id,
            "provider": "sendgrid",
            "recipient": recipient,
            "tags": ["receipts"],
            "metadata": {"order": "42"},
            "detail": payload["data"]["detail"],
        }
        assert received.headers["webhook-id"] == payload["id"] and received.headers["webhook-attempt"] == "1"
    assert not receiver.events("message.queued")  # not asked for

    # Listed newest first, a page at a time, with each attempt.
    first = api(client, "GET", f"/{endpoint['id']}/deliveries", params={"limit": 1}).json()
    (newest,) = first["results"]
    assert newest["event_type"] == "message.delivered" and newest["status"] == "succeeded"
    assert newest["attempt_log"][0]["status_code"] == 200 and newest["attempt_log"][0]["outcome"] == "succeeded"
    second = requests.get(first["next"], headers=client.headers, timeout=10).json()
    assert [d["event_type"] for d in second["results"]] == ["message.sent"]

    # Replayed: the same event again, the next attempt number.
    replayed = api(client, "POST", f"/{endpoint['id']}/deliveries/{newest['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    wait_until(lambda: len(receiver.events("message.delivered")) == 2, timeout=30, what="the replay")
    again = receiver.events("message.delivered")[1]
    assert again.headers["webhook-id"] == delivered.headers["webhook-id"] and again.headers["webhook-attempt"] == "2"

    # Rotated: during the overlap a client verifying with either secret succeeds.
    rotated = api(client, "POST", f"/{endpoint['id']}/rotate-secret").json()
    other_id = client.post(mail_body())
    wait_until(lambda: len(receiver.events("message.sent")) == 2, timeout=30, what="a callback after the rotation")
    after = receiver.events("message.sent")[1]
    for key in (secret, rotated["secret"]):
        assert after.verified_with(key)["data"]["message_id"] == other_id


def test_a_receiver_down_for_a_while_gets_every_event_and_mail_does_not_slow(client, receiver):
    endpoint = create_endpoint(client, receiver.url, event_types=["message.queued", "message.sent"])

    def send_batch() -> float:
        started = time.monotonic()
        ids = [client.post(mail_body(f"m{n}")) for n in range(8)]
        for message_id in ids:
            client.wait_for_status(message_id, "sent")
        return time.monotonic() - started

    with_callbacks_working = send_batch()
    wait_until(lambda: all_delivered(endpoint["id"], 16), timeout=30, what="the first callbacks")

    receiver.stop()  # connection refused
    with_callbacks_failing = send_batch()
    # Mail went at its pace while every callback failed (compared, not timed against a number).
    assert with_callbacks_failing <= max(2 * with_callbacks_working, with_callbacks_working + 3), (
        with_callbacks_working,
        with_callbacks_failing,
    )
    attempts = Attempt.objects.filter(delivery__endpoint_id=endpoint["id"])
    # Each way of being down in turn, until an attempt has met it (as the attempt log records it).
    wait_until(lambda: attempts.filter(error__startswith="connection error").exists(), timeout=20, what="a refused attempt")
    receiver.answer(500)
    receiver.start()
    wait_until(lambda: attempts.filter(status_code=500).exists(), timeout=20, what="an attempt answered 500")
    receiver.answer(200, delay=2)  # past the 1 s read timeout
    wait_until(lambda: attempts.filter(error__startswith="timeout").exists(), timeout=20, what="an attempt timed out")
    receiver.answer(200)

    ids = wait_until(lambda: all_delivered(endpoint["id"], 32), timeout=60, what="every callback delivered")
    received = receiver.events()
    assert {r.headers["webhook-id"] for r in received} >= ids
    per_attempt = collections.Counter((r.headers["webhook-id"], r.headers["webhook-attempt"]) for r in received)
    assert max(per_attempt.values()) == 1
    assert attempts.filter(outcome="retrying").count() >= 3 and not attempts.filter(outcome="failed").exists()


def test_a_killed_callbacks_worker_loses_none(client, receiver, stack):
    receiver.answer(200, delay=0.5)
    endpoint = create_endpoint(client, receiver.url, event_types=["message.queued", "message.sent"])
    for n in range(6):
        client.post(mail_body(f"k{n}"))
    wait_until(lambda: len(receiver.events()) >= 2, timeout=30, what="callbacks in flight")
    os.killpg(stack.callback_worker.process.pid, signal.SIGKILL)
    stack.callback_worker.process.wait()
    stack.callback_worker = stack.start_worker(WORKER_CONSUMES="callbacks")

    ids = wait_until(lambda: all_delivered(endpoint["id"], 12), timeout=60, what="every callback after the kill")
    # Some were in flight when the worker died: taken over once their lease ran out, as the next attempt.
    assert Delivery.objects.filter(endpoint_id=endpoint["id"], attempts__gte=2).exists()
    received = receiver.events()
    assert {r.headers["webhook-id"] for r in received} >= ids
    per_attempt = collections.Counter((r.headers["webhook-id"], r.headers["webhook-attempt"]) for r in received)
    assert max(per_attempt.values()) == 1


def test_a_deleted_endpoints_callbacks_are_dropped_and_a_redirect_is_a_recorded_failure(client, stack):
    failing, redirecting = Receiver(), Receiver()
    try:
        failing.answer(500)
        redirecting.answer(302, location="http://169.254.169.254/latest/meta-data/")
        doomed = create_endpoint(client, failing.url, event_types=["message.sent"])
        assert doomed["test"] == {"delivered": False, "status_code": 500, "error": "HTTP 500"}
        redirected = create_endpoint(client, redirecting.url, event_types=["message.sent"])
        assert redirected["test"]["delivered"] is False and "not followed" in redirected["test"]["error"]

        client.post(mail_body())
        wait_until(lambda: failing.events("message.sent"), timeout=30, what="a first failed attempt")
        (delivery_id,) = Delivery.objects.filter(endpoint_id=doomed["id"]).values_list("pk", flat=True)
        assert api(client, "DELETE", f"/{doomed['id']}").status_code == 204
        wait_until(
            lambda: (
                "callback task dropped" in stack.callback_worker.output() and str(delivery_id) in stack.callback_worker.output()
            ),
            timeout=30,
            what="the deleted endpoint's callback dropped",
        )
        seen = len(failing.events())
        time.sleep(3)  # longer than the next retry waits: proving that nothing more comes needs a wait
        assert len(failing.events()) == seen and not Delivery.objects.filter(pk=delivery_id).exists()

        # The redirect was not followed: one attempt, recorded as failed, not retried.
        listed = wait_until(
            lambda: (
                (d := api(client, "GET", f"/{redirected['id']}/deliveries").json()["results"])
                and d[0]["status"] == "failed"
                and d
            ),
            timeout=30,
            what="the redirected callback recorded as failed",
        )
        (attempt,) = listed[0]["attempt_log"]
        assert attempt["status_code"] == 302 and "not followed" in attempt["error"] and attempt["outcome"] == "failed"
        assert len(redirecting.events("message.sent")) == 1
    finally:
        failing.stop()
        redirecting.stop()


def test_a_sandbox_keys_mail_brings_the_callbacks_a_real_send_would(stack, receiver):
    _, key = keys.create("sandbox callbacks", sandbox=True)
    stack.headers = {"Authorization": f"Bearer {key}"}
    endpoint = create_endpoint(stack, receiver.url, event_types=["message.sent", "message.bounced"])
    sent_before = len(Simulator().requests())

    message_id = stack.post({**mail_body(), "to": "bounced+signup@sandbox.example.com"})
    wait_until(lambda: receiver.events("message.bounced"), timeout=30, what="message.bounced")
    wait_until(lambda: receiver.events("message.sent"), timeout=30, what="message.sent")
    bounced = receiver.events("message.bounced")[0].verified_with(endpoint["secret"])
    assert bounced["data"]["message_id"] == message_id and bounced["data"]["provider"] == "sandbox"
    assert bounced["data"]["recipient"] == "bounced+signup@sandbox.example.com"
    assert len(Simulator().requests()) == sent_before  # no provider heard of it
