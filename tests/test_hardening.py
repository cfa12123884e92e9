"""What an adversarial probe of the running service got through (docs/security.md), each through
HTTP against real API processes: every test here failed before its fix."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import socket
import threading
import time
import uuid
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from mail.models import Message, Suppression

from .stack import mail_body
from .support import sent_message
from .webhook_signing import MailgunSigner, SendGridSigner, mailgun_event, sendgrid_body, sendgrid_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def post(stack, path: str, body, **kwargs) -> requests.Response:
    return requests.post(f"{stack.api_url}{path}", json=body, headers=stack.headers, timeout=30, **kwargs)


# --- 1. whole-value validation -----------------------------------------------------------------


# DRF trims surrounding whitespace from string values (a subject, a content type, a tag), so a
# final newline there never reached a provider; dictionary keys are not trimmed.
LINE_BREAKS = {
    "bcc-newline": {"headers": {"Bcc\n": "victim@example.net"}},
    "from-newline": {"headers": {"From\n": "ceo@example.com"}},
    "line-separator": {"headers": {"X-Note": "a\u2028Bcc: victim@example.net"}},
    "nel": {"headers": {"X-Note": "next\u0085line"}},
    "metadata-newline": {"metadata": {"order\n": "1"}},
    "our-id-newline": {"metadata": {"mailer_message_id\n": "forged"}},
    "subject-paragraph": {"subject": "Hello\u2029Bcc: victim@example.net"},
    "c1-in-name": {"from": "Shop\u009b <shop@example.com>"},
}


def test_a_key_with_a_final_newline_or_a_unicode_line_break_is_refused(make_stack):
    stack = make_stack()
    for name, change in LINE_BREAKS.items():
        response = post(stack, "/api/v1/messages", {**mail_body(), **change})
        assert response.status_code == 400, (name, response.text)
        assert response.json()["error"]["type"] == "validation_error", name
    assert Message.objects.count() == 0


# --- 2. and 3. the rate limit ------------------------------------------------------------------


def test_the_rate_limit_holds_under_a_concurrent_burst_through_two_api_processes(make_stack):
    stack = make_stack(REDIS_URL="redis://127.0.0.1:6379/15", API_RATE_LIMIT="100/min")
    first = stack.api_url
    stack.start_api()
    urls = [f"{base}/api/v1/messages/{uuid.uuid4()}" for base in (first, stack.api_url) for _ in range(150)]

    def get(url):
        return requests.get(url, headers=stack.headers, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
        codes = list(pool.map(get, urls))
    # 404: let through (no such message); 429: refused. Exactly the limit passes, across both.
    assert codes.count(404) == 100, {code: codes.count(code) for code in set(codes)}
    assert codes.count(429) == 200


def test_a_batch_is_weighed_by_its_messages_and_recipients(make_stack):
    stack = make_stack(REDIS_URL="redis://127.0.0.1:6379/15", API_RATE_LIMIT="300/min")
    # Over the recipient cap: refused before any address is parsed, and charged its 110 units
    # all the same (counting them is the cheap part; parsing them is what the charge pays for).
    huge = [mail_body(to=[f"r{i}@example.com" for i in range(1000)])] * 11
    too_many = post(stack, "/api/v1/messages/batch", huge)
    assert too_many.status_code == 400 and "at most 10000 recipients" in too_many.text
    assert post(stack, "/api/v1/messages/batch", [mail_body()] * 100).status_code == 202  # 210 units spent
    refused = post(stack, "/api/v1/messages/batch", [mail_body()] * 100)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert Message.objects.count() == 100


# --- 4. webhook bodies -------------------------------------------------------------------------


def headers_then_wait(stack, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send only a request's headers, declaring a body never sent: the answer must come first."""
    host, port = stack.api_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.putrequest("POST", path)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    return response.status, response.read()


def test_a_webhook_body_over_its_cap_is_refused_unread(make_stack):
    stack = make_stack(MAILGUN_WEBHOOK_SIGNING_KEY=MailgunSigner().signing_key)
    status, body = headers_then_wait(
        stack, "/webhooks/mailgun", {"Content-Type": "application/json", "Content-Length": str(36 * 1000 * 1000)}
    )
    assert status == 413, body
    assert json.loads(body)["error"]["type"] == "payload_too_large"


def test_a_sendgrid_webhook_without_its_signature_headers_is_refused_unread(make_stack):
    stack = make_stack(SENDGRID_WEBHOOK_PUBLIC_KEY=SendGridSigner().public_key_b64)
    status, body = headers_then_wait(
        stack, "/webhooks/sendgrid", {"Content-Type": "application/json", "Content-Length": "1000000"}
    )
    assert status == 403, body
    assert json.loads(body)["error"]["type"] == "invalid_signature"


# --- 5. slow bodies ----------------------------------------------------------------------------


def test_slow_bodies_neither_starve_the_api_nor_hold_it_past_their_deadline(make_stack):
    # One process with a pool of two database connections: a slow upload must hold neither a
    # thread nor a connection (authentication takes one) while its body trickles in.
    stack = make_stack(
        REQUEST_BODY_TIMEOUT_SECONDS="4", REQUEST_BODY_MIN_BYTES_PER_SECOND="1000000", WEB_WORKERS="1", DATABASE_POOL_SIZE="2"
    )
    host, port = stack.api_url.removeprefix("http://").split(":")
    answers: list[bytes] = []
    stop = threading.Event()
    dripping = threading.Semaphore(0)

    def slow_client():
        # More slow connections than the old server had threads (3 x 2), each dripping a 100 kB body.
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(
                b"POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + f"Authorization: {stack.headers['Authorization']}\r\nContent-Length: 100000\r\n\r\n".encode()
            )
            dripping.release()
            try:
                while not stop.is_set():
                    connection.sendall(b" ")
                    stop.wait(1)
            except OSError:
                pass  # closed by the server: what the deadline is for
            try:
                answers.append(connection.recv(4096))
            except OSError:
                answers.append(b"")

    clients = [threading.Thread(target=slow_client) for _ in range(12)]
    for client in clients:
        client.start()
    for _ in clients:
        assert dripping.acquire(timeout=10)  # each slow client has sent its headers
    started = time.monotonic()
    for _ in range(5):
        t = time.monotonic()
        assert requests.get(f"{stack.api_url}/healthz", timeout=5).status_code == 200
        assert post(stack, "/api/v1/messages", mail_body()).status_code == 202
        assert time.monotonic() - t < 2, "a probe waited behind the slow clients"
    assert time.monotonic() - started < 10
    for client in clients:
        client.join(timeout=15)
    stop.set()
    assert len(answers) == 12
    assert all(b"408" in answer.split(b"\r\n", 1)[0] and b"request_timeout" in answer for answer in answers), answers[:2]


# --- 6. signed events act only within their scope ----------------------------------------------


def test_signed_events_cannot_suppress_an_address_the_message_was_never_sent_to(make_stack):
    sendgrid, mailgun = SendGridSigner(), MailgunSigner()
    stack = make_stack(SENDGRID_WEBHOOK_PUBLIC_KEY=sendgrid.public_key_b64, MAILGUN_WEBHOOK_SIGNING_KEY=mailgun.signing_key)
    send_at = (timezone.now() + timedelta(hours=2)).isoformat()
    scheduled = post(stack, "/api/v1/messages", {**mail_body(), "send_at": send_at}).json()["id"]
    sent = sent_message(Message.objects.get(pk=scheduled).api_key)

    body = sendgrid_body(sendgrid_event(scheduled, "spamreport", email="victim@example.net"))
    response = requests.post(f"{stack.api_url}/webhooks/sendgrid", data=body, headers=sendgrid.headers(body), timeout=10)
    assert response.status_code == 200 and response.json()["recorded"] == 1
    forged = mailgun.body(mailgun_event(str(sent.id), "complained", recipient="victim@example.net"))
    assert requests.post(f"{stack.api_url}/webhooks/mailgun", data=forged, timeout=10).json()["recorded"] == 1
    body = sendgrid_body(sendgrid_event(str(sent.id), "spamreport", email="victim@example.net"))
    requests.post(f"{stack.api_url}/webhooks/sendgrid", data=body, headers=sendgrid.headers(body), timeout=10)

    assert not Suppression.objects.exists()
    assert Message.objects.get(pk=scheduled).status == "scheduled"
    assert Message.objects.get(pk=sent.pk).status == "sent"
    # Within its scope the same kind of event still acts.
    body = sendgrid_body(sendgrid_event(str(sent.id), "spamreport", email="Ann@Example.com"))
    requests.post(f"{stack.api_url}/webhooks/sendgrid", data=body, headers=sendgrid.headers(body), timeout=10)
    assert list(Suppression.objects.values_list("address", "reason")) == [("ann@example.com", "complaint")]
