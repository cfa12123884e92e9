"""The providers' delivery webhooks over HTTP, signed with keys generated here: forged, tampered,
stale and replayed requests are refused before anything is believed; events are stored once,
in one vocabulary, and move a message's status forward only."""

import json
import logging
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from mail import status
from mail.models import Message, MessageEvent, Suppression, WebhookToken
from providers.events import EventType

from .support import sent_message
from .webhook_signing import MailgunSigner, SendGridSigner, mailgun_event, sendgrid_body, sendgrid_event

SENDGRID_URL = "/webhooks/sendgrid"
MAILGUN_URL = "/webhooks/mailgun"


@pytest.fixture
def signer(settings):
    signer = SendGridSigner()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key_b64
    return signer


@pytest.fixture
def mailgun_signer(settings):
    signer = MailgunSigner()
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = signer.signing_key
    return signer


@pytest.fixture
def message(api_key):
    """A message SendGrid has accepted."""
    return sent_message(api_key[0])


@pytest.fixture
def mailgun_message(api_key):
    """A message Mailgun accepted: only its sender's events act on a message."""
    return sent_message(api_key[0], provider="mailgun")


def post_sendgrid(client, body: bytes, headers: dict):
    return client.post(SENDGRID_URL, data=body, content_type="application/json", headers=headers)


def post_mailgun(client, body: bytes, content_type="application/json"):
    return client.post(MAILGUN_URL, data=body, content_type=content_type)


def status_of(message) -> str:
    message.refresh_from_db()
    return message.status


def provider_events(message) -> list[tuple[str, str]]:
    return list(MessageEvent.objects.filter(message=message).exclude(provider_event_id="").values_list("type", "provider"))


def assert_error(response, status: int, error_type: str):
    assert response.status_code == status, response.content
    assert response.json()["error"]["type"] == error_type


# --- SendGrid: signature -----------------------------------------------------------------------


def test_a_signed_delivered_event_is_recorded_and_shown_by_the_api(client, api_client, signer, message):
    body = sendgrid_body(sendgrid_event(str(message.id), "delivered", email="Ann@Example.com", response="250 OK"))
    response = post_sendgrid(client, body, signer.headers(body))
    assert response.status_code == 200, response.content
    assert response.json()["recorded"] == 1

    shown = api_client.get(f"/api/v1/messages/{message.id}").json()
    assert shown["status"] == "delivered"
    (event,) = [e for e in shown["events"] if e["type"] == "delivered"]
    assert event["provider"] == "sendgrid" and event["recipient"] == "ann@example.com"
    assert "250 OK" in event["detail"] and event["occurred_at"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda body, headers: (body.replace(b"delivered", b"bounce"), headers),
        lambda body, headers: (body + b" ", headers),
        lambda body, headers: (body, {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()) - 1)}),
        lambda body, headers: (body, SendGridSigner().headers(body)),  # another key
        lambda body, headers: (body, {}),
        lambda body, headers: (body, {**headers, "X-Twilio-Email-Event-Webhook-Signature": "not base64!"}),
        lambda body, headers: (body, {**headers, "X-Twilio-Email-Event-Webhook-Signature": ""}),
    ],
    ids=["tampered body", "one byte added", "timestamp changed", "wrong key", "unsigned", "garbage signature", "empty signature"],
)
def test_sendgrid_refuses_what_it_did_not_sign(client, signer, message, tamper):
    body = sendgrid_body(sendgrid_event(str(message.id), "delivered"))
    forged_body, headers = tamper(body, signer.headers(body))
    assert_error(post_sendgrid(client, forged_body, headers), 403, "invalid_signature")
    assert provider_events(message) == [] and status_of(message) == "sent"


# Ahead by 302, not 301: the timestamp is a whole second and the check is against the present
# instant, so "301 s ahead" reads as 300.x s a fraction of a second later, and would pass.
@pytest.mark.parametrize("age", [301, -302, 3600], ids=["5 min old", "5 min ahead", "an hour old"])
def test_sendgrid_refuses_a_stale_timestamp(client, signer, message, age):
    body = sendgrid_body(sendgrid_event(str(message.id)))
    response = post_sendgrid(client, body, signer.headers(body, timestamp=int(time.time()) - age))
    assert_error(response, 403, "invalid_signature")
    assert "300 s" in response.json()["error"]["message"]
    assert provider_events(message) == []


def test_sendgrid_without_a_configured_key_refuses_everything(client, settings, message):
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = ""
    body = sendgrid_body(sendgrid_event(str(message.id)))
    # 503: SendGrid retries, so what it sends before the key is set is not lost.
    assert_error(post_sendgrid(client, body, SendGridSigner().headers(body)), 503, "webhook_not_configured")
    assert provider_events(message) == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"event": "delivered"}',
        b'["delivered"]',
        b'[{"email": "a@example.com"}]',
        b"\xff\xfe",
        b'[{"event": "delivered", "timestamp": "yesterday"}]',
    ],
    ids=["not JSON", "an object, not an array", "not objects", "no event name", "not UTF-8", "bad timestamp"],
)
def test_sendgrid_malformed_but_signed_body_is_400_and_nothing_is_stored(client, signer, message, body):
    assert_error(post_sendgrid(client, body, signer.headers(body)), 400, "malformed_webhook")
    assert provider_events(message) == []


def test_only_post_is_allowed(client, db, signer):
    response = client.get(SENDGRID_URL)
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_provider_that_does_not_exist_has_no_webhook(client, db, method):
    assert_error(getattr(client, method)("/webhooks/nobody"), 404, "not_found")


# --- SendGrid: events --------------------------------------------------------------------------


def test_a_resent_sendgrid_event_is_stored_once(client, signer, message):
    event = sendgrid_event(str(message.id), "delivered")
    body = sendgrid_body(event, event)  # twice in one batch ...
    assert post_sendgrid(client, body, signer.headers(body)).json() == {
        "received": 2,
        "recorded": 1,
        "duplicate": 1,
        "unknown_message": 0,
    }
    body = sendgrid_body(event)  # ... and again later, as SendGrid retries
    assert post_sendgrid(client, body, signer.headers(body)).json()["duplicate"] == 1
    assert provider_events(message) == [("delivered", "sendgrid")]


def test_out_of_order_events_never_move_the_status_backwards(client, signer, message):
    mid = str(message.id)
    for name, expected in [
        ("bounce", "bounced"),
        ("delivered", "bounced"),
        ("processed", "bounced"),
        ("spamreport", "complained"),
        ("bounce", "complained"),
    ]:
        body = sendgrid_body(sendgrid_event(mid, name))
        assert post_sendgrid(client, body, signer.headers(body)).status_code == 200
        assert status_of(message) == expected, name
    assert [t for t, _ in provider_events(message)] == ["bounced", "delivered", "processed", "complained", "bounced"]


def test_delivered_then_bounced_moves_forward(client, signer, message):
    mid = str(message.id)
    body = sendgrid_body(
        sendgrid_event(mid, "processed"), sendgrid_event(mid, "delivered"), sendgrid_event(mid, "bounce", type="bounce")
    )
    post_sendgrid(client, body, signer.headers(body))
    assert status_of(message) == "bounced"


def test_events_for_a_message_not_yet_marked_sent_keep_its_status(client, signer, message):
    Message.objects.filter(pk=message.pk).update(status=Message.Status.SENDING)
    body = sendgrid_body(sendgrid_event(str(message.id), "delivered"))
    assert post_sendgrid(client, body, signer.headers(body)).json()["recorded"] == 1
    assert status_of(message) == "sending"


@pytest.mark.parametrize(
    "message_id", ["7b0a5d8e-0000-4000-8000-000000000000", "not-a-uuid", ""], ids=["unknown id", "not ours", "none"]
)
def test_an_event_for_an_unknown_message_is_200_and_logged(client, signer, message, caplog, message_id):
    body = sendgrid_body(sendgrid_event(message_id, "delivered"))
    with caplog.at_level(logging.WARNING, logger="mail.status"):
        response = post_sendgrid(client, body, signer.headers(body))
    assert response.status_code == 200 and response.json()["unknown_message"] == 1
    assert "unknown message" in caplog.text
    assert MessageEvent.objects.exclude(provider_event_id="").count() == 0


def test_a_batch_for_several_messages_records_each(client, signer, message, api_key):
    other = Message.objects.create(
        api_key=api_key[0],
        team=api_key[0].profile.team,
        status="sent",
        from_email="a@example.com",
        recipients="b@example.com",
        recipient_count=1,
        subject="x",
    )
    body = sendgrid_body(
        sendgrid_event(str(message.id), "delivered"), sendgrid_event(str(other.id), "deferred"), sendgrid_event("", "open")
    )
    assert post_sendgrid(client, body, signer.headers(body)).json() == {
        "received": 3,
        "recorded": 2,
        "duplicate": 0,
        "unknown_message": 1,
    }
    assert status_of(message) == "delivered" and status_of(other) == "sent"


SENDGRID_KINDS = [
    ("processed", {}, "processed"),
    ("delivered", {"response": "250 OK"}, "delivered"),
    ("deferred", {"response": "400 try again later", "attempt": "1"}, "deferred"),
    ("bounce", {"type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 unknown user"}, "bounced"),
    ("bounce", {"type": "blocked", "status": "5.7.1", "reason": "550 blocked"}, "bounced"),
    ("dropped", {"reason": "Bounced Address"}, "dropped"),
    ("spamreport", {}, "complained"),
    ("unsubscribe", {}, "unsubscribed"),
    ("group_unsubscribe", {"asm_group_id": 1}, "unsubscribed"),
    ("open", {"useragent": "Mozilla/5.0", "ip": "203.0.113.1"}, "opened"),
    ("click", {"url": "https://example.com/offer"}, "clicked"),
]


@pytest.mark.parametrize(
    "name,extra,expected", SENDGRID_KINDS, ids=[f"{n} {e.get('type', '')}".strip() for n, e, _ in SENDGRID_KINDS]
)
def test_every_sendgrid_event_kind_is_normalised(client, signer, message, name, extra, expected):
    body = sendgrid_body(sendgrid_event(str(message.id), name, **extra))
    assert post_sendgrid(client, body, signer.headers(body)).json()["recorded"] == 1
    assert provider_events(message) == [(expected, "sendgrid")]
    assert expected in {kind.value for kind in EventType}


def test_kinds_outside_the_vocabulary_are_left_out(client, signer, message):
    body = sendgrid_body(sendgrid_event(str(message.id), "group_resubscribe"))
    assert post_sendgrid(client, body, signer.headers(body)).json()["received"] == 0
    assert provider_events(message) == []


def test_hard_bounces_and_complaints_suppress_the_recipient_soft_ones_do_not(client, signer, message):
    mid = str(message.id)
    Message.objects.filter(pk=message.pk).update(
        recipients="gone@example.com, blocked@example.com, full@example.com, angry@example.com"
    )
    body = sendgrid_body(
        sendgrid_event(mid, "bounce", email="Gone@Example.com", type="bounce", reason="550 5.1.1 no such user"),
        sendgrid_event(mid, "bounce", email="blocked@example.com", type="blocked", reason="550 5.7.1 blocked"),
        sendgrid_event(mid, "deferred", email="full@example.com"),
        sendgrid_event(mid, "spamreport", email="angry@example.com"),
    )
    post_sendgrid(client, body, signer.headers(body))
    rows = {s.address: (s.reason, s.provider, s.message_id) for s in Suppression.objects.all()}
    assert rows == {
        "gone@example.com": ("hard_bounce", "sendgrid", message.id),
        "angry@example.com": ("complaint", "sendgrid", message.id),
    }
    assert "no such user" in Suppression.objects.get(address="gone@example.com").detail


# --- Mailgun -----------------------------------------------------------------------------------


def test_a_signed_mailgun_event_is_recorded(client, mailgun_signer, mailgun_message):
    message = mailgun_message
    body = mailgun_signer.body(mailgun_event(str(message.id), "delivered", **{"delivery-status": {"code": 250, "message": "OK"}}))
    response = post_mailgun(client, body)
    assert response.status_code == 200 and response.json()["recorded"] == 1
    assert status_of(message) == "delivered"
    event = MessageEvent.objects.get(message=message, type="delivered")
    assert event.provider == "mailgun" and event.recipient == "ann@example.com" and "250" in event.detail


@pytest.mark.parametrize(
    "signature",
    [
        {"key": "another-key"},
        {"age": 301},
        {"age": -302},  # not -301: see test_sendgrid_refuses_a_stale_timestamp
    ],
    ids=["wrong key", "stale", "from the future"],
)
def test_mailgun_refuses_a_bad_or_stale_signature_with_406(client, mailgun_signer, message, signature):
    if "age" in signature:
        signature = {"timestamp": int(time.time()) - signature["age"]}
    body = mailgun_signer.body(mailgun_event(str(message.id)), **signature)
    assert_error(post_mailgun(client, body), 406, "invalid_signature")
    assert provider_events(message) == [] and WebhookToken.objects.count() == 0


@pytest.mark.parametrize("part", ["timestamp", "token", "signature"])
def test_mailgun_refuses_a_signature_with_a_part_changed(client, mailgun_signer, message, part):
    document = json.loads(mailgun_signer.body(mailgun_event(str(message.id))))
    value = document["signature"][part]
    document["signature"][part] = str(int(value) - 1) if part == "timestamp" else value[::-1]
    assert_error(post_mailgun(client, json.dumps(document).encode()), 406, "invalid_signature")


def test_mailgun_unsigned_and_unconfigured_are_refused(client, settings, mailgun_signer, message):
    unsigned = json.dumps({"event-data": mailgun_event(str(message.id))}).encode()
    assert_error(post_mailgun(client, unsigned), 406, "invalid_signature")
    settings.MAILGUN_WEBHOOK_SIGNING_KEY = ""
    assert_error(post_mailgun(client, mailgun_signer.body(mailgun_event(str(message.id)))), 503, "webhook_not_configured")
    assert provider_events(message) == []


def test_a_replayed_mailgun_token_is_refused(client, mailgun_signer, message):
    body = mailgun_signer.body(mailgun_event(str(message.id), "delivered"))
    assert post_mailgun(client, body).status_code == 200
    assert_error(post_mailgun(client, body), 406, "replayed_webhook")
    # The same token with another (validly signed) event is a replay too.
    token = json.loads(body)["signature"]["token"]
    assert_error(
        post_mailgun(client, mailgun_signer.body(mailgun_event(str(message.id), "opened"), token=token)), 406, "replayed_webhook"
    )
    assert provider_events(message) == [("delivered", "mailgun")]


def test_a_mailgun_event_resent_with_a_fresh_token_is_stored_once(client, mailgun_signer, message):
    event = mailgun_event(str(message.id), "delivered")
    assert post_mailgun(client, mailgun_signer.body(event)).json()["recorded"] == 1
    assert post_mailgun(client, mailgun_signer.body(event)).json()["duplicate"] == 1
    assert provider_events(message) == [("delivered", "mailgun")]


@pytest.mark.parametrize(
    "body,content_type",
    [
        (b"{not json", "application/json"),
        (b"event=delivered&recipient=a%40example.com", "application/x-www-form-urlencoded"),
        (b"[1, 2]", "application/json"),
    ],
    ids=["not JSON", "a form", "not an object"],
)
def test_mailgun_malformed_body_is_400(client, mailgun_signer, body, content_type):
    assert_error(post_mailgun(client, body, content_type), 400, "malformed_webhook")


def test_a_signed_mailgun_body_without_a_usable_event_is_400_and_does_not_use_up_its_token(client, mailgun_signer, message):
    signature = mailgun_signer.signature()
    broken = {"signature": signature, "event-data": {"event": "failed", "recipient": "ann@example.com"}}  # no severity
    assert_error(post_mailgun(client, json.dumps(broken).encode()), 400, "malformed_webhook")
    assert_error(post_mailgun(client, json.dumps({"signature": signature, "event-data": "x"}).encode()), 400, "malformed_webhook")
    fixed = {"signature": signature, "event-data": mailgun_event(str(message.id), "delivered")}
    assert post_mailgun(client, json.dumps(fixed).encode()).status_code == 200


def test_a_mailgun_event_for_an_unknown_message_is_200_and_its_token_is_used(client, db, mailgun_signer, caplog):
    body = mailgun_signer.body(mailgun_event("", "delivered"))
    with caplog.at_level(logging.WARNING, logger="mail.status"):
        assert post_mailgun(client, body).json()["unknown_message"] == 1
    assert "unknown message" in caplog.text
    assert post_mailgun(client, body).status_code == 406


MAILGUN_KINDS = [
    ({"event": "accepted"}, "processed", None),
    ({"event": "delivered"}, "delivered", None),
    ({"event": "failed", "severity": "temporary", "reason": "generic"}, "deferred", None),
    (
        {
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "delivery-status": {"code": 550, "description": "No such user"},
        },
        "bounced",
        "hard_bounce",
    ),
    ({"event": "failed", "severity": "permanent", "reason": "espblock"}, "bounced", None),
    ({"event": "failed", "severity": "permanent", "reason": "old"}, "bounced", None),
    ({"event": "failed", "severity": "permanent", "reason": "suppress-bounce"}, "dropped", None),
    ({"event": "rejected", "reject": {"reason": "sandbox"}}, "dropped", None),
    ({"event": "complained"}, "complained", "complaint"),
    ({"event": "unsubscribed"}, "unsubscribed", None),
    ({"event": "opened"}, "opened", None),
    ({"event": "clicked", "url": "https://example.com/x"}, "clicked", None),
]


@pytest.mark.parametrize(
    "data,expected,suppression", MAILGUN_KINDS, ids=[f"{d['event']} {d.get('reason', '')}".strip() for d, _, _ in MAILGUN_KINDS]
)
def test_every_mailgun_event_kind_is_normalised(client, mailgun_signer, mailgun_message, data, expected, suppression):
    message = mailgun_message
    event = {**mailgun_event(str(message.id), recipient="Ann@Example.com"), **data}
    assert post_mailgun(client, mailgun_signer.body(event)).json()["recorded"] == 1
    assert provider_events(message) == [(expected, "mailgun")]
    assert list(Suppression.objects.values_list("address", "reason")) == (
        [("ann@example.com", suppression)] if suppression else []
    )


def test_a_mailgun_kind_outside_the_vocabulary_is_left_out(client, mailgun_signer, message):
    assert post_mailgun(client, mailgun_signer.body(mailgun_event(str(message.id), "stored"))).json()["received"] == 0
    assert provider_events(message) == []


def test_events_from_both_providers_share_one_history_and_only_the_senders_act(client, signer, mailgun_signer, message):
    # SendGrid sent it; a signed Mailgun event about it is recorded for the operator and changes
    # nothing (Mailgun's signature does not cover the event, so its content proves nothing).
    body = sendgrid_body(sendgrid_event(str(message.id), "delivered"))
    post_sendgrid(client, body, signer.headers(body))
    post_mailgun(client, mailgun_signer.body(mailgun_event(str(message.id), "failed", severity="permanent", reason="bounce")))
    assert provider_events(message) == [("delivered", "sendgrid"), ("bounced", "mailgun")]
    assert status_of(message) == "delivered"
    assert not Suppression.objects.exists()


@pytest.mark.parametrize(
    "change,why",
    [
        ({"status": "scheduled", "sent_at": None, "provider": ""}, "not sent yet"),
        ({"recipients": "someone-else@example.com"}, "the address was never its recipient"),
        ({"provider": "mailgun"}, "another provider sent it"),
    ],
)
def test_a_signed_complaint_outside_its_scope_suppresses_nothing(client, signer, message, change, why):
    Message.objects.filter(pk=message.pk).update(**change)
    body = sendgrid_body(sendgrid_event(str(message.id), "spamreport", email="ann@example.com"))
    assert post_sendgrid(client, body, signer.headers(body)).json()["recorded"] == 1, why
    assert provider_events(message) == [("complained", "sendgrid")]
    assert not Suppression.objects.exists(), why
    assert status_of(message) == Message.objects.get(pk=message.pk).status != "complained"


def test_a_complaint_from_a_provider_whose_answer_we_missed_still_suppresses(client, signer, message):
    # SendGrid timed out (it may have sent it all the same) and Mailgun sent it: SendGrid's spam
    # report is as real, so its recipient is suppressed; the status follows Mailgun.
    Message.objects.filter(pk=message.pk).update(provider="mailgun")
    MessageEvent.objects.create(message=message, type="retry_scheduled", provider="sendgrid", detail="read timeout")
    body = sendgrid_body(sendgrid_event(str(message.id), "spamreport", email="ann@example.com"))
    post_sendgrid(client, body, signer.headers(body))
    assert list(Suppression.objects.values_list("address", "reason")) == [("ann@example.com", "complaint")]
    assert status_of(message) == "sent"


def test_an_event_before_the_sent_write_acts_once_it_is_made(client, signer, message):
    # The provider's webhook can beat our own `sent` write; the write then catches up with it.
    Message.objects.filter(pk=message.pk).update(status="sending", sent_at=None)
    body = sendgrid_body(sendgrid_event(str(message.id), "bounce", email="ann@example.com", type="bounce", reason="550 no user"))
    post_sendgrid(client, body, signer.headers(body))
    assert not Suppression.objects.exists()
    Message.objects.filter(pk=message.pk).update(status="sent", sent_at=timezone.now())
    status.catch_up(message.id)
    assert status_of(message) == "bounced"
    assert list(Suppression.objects.values_list("address", "reason")) == [("ann@example.com", "hard_bounce")]


def test_old_mailgun_tokens_are_forgotten_and_fresh_ones_kept(db, settings):
    now = timezone.now()
    WebhookToken.objects.create(token="old", signed_at=now - timedelta(seconds=settings.WEBHOOK_MAX_AGE_SECONDS * 3))
    WebhookToken.objects.create(token="fresh", signed_at=now - timedelta(seconds=settings.WEBHOOK_MAX_AGE_SECONDS // 2))
    assert status.forget_old_webhook_tokens() == 1
    assert list(WebhookToken.objects.values_list("token", flat=True)) == ["fresh"]


def test_the_vocabulary_is_one_the_history_can_store():
    assert {kind.value for kind in EventType} <= set(MessageEvent.Type.values)


HOSTILE_SENDGRID = [
    b'[{"event": "delivered", "email": "a\\u0000b@example.com", "sg_event_id": "x\\ud800", "reason": "\\u0000"}]',
    b'[{"event": "bounce", "email": ["a"], "sg_event_id": {"a": 1}, "type": 5, "mailer_message_id": 7}]',
    b'[{"event": "delivered", "timestamp": 1e300}]',
    b'[{"event": "delivered", "timestamp": -1}]',
    b'[{"event": "delivered", "timestamp": true}]',
    b"[" * 100_000 + b"]" * 100_000,
    b"[]",
]


@pytest.mark.parametrize(
    "body",
    HOSTILE_SENDGRID,
    ids=["NUL and surrogates", "wrong types", "huge time", "negative time", "boolean time", "deep nesting", "empty"],
)
def test_hostile_but_signed_sendgrid_bodies_never_give_a_500(client, signer, message, body):
    response = post_sendgrid(client, body, signer.headers(body))
    assert response.status_code in (200, 400), response.content


@pytest.mark.parametrize(
    "timestamp",
    ["²³", "1" * 5000, "-5", " 1", "１７００００００００"],
    ids=["superscript digits", "5000 digits", "negative", "space", "full-width digits"],
)
def test_odd_sendgrid_timestamps_are_refused_not_a_500(client, signer, message, timestamp):
    body = sendgrid_body(sendgrid_event(str(message.id)))
    headers = {**signer.headers(body), "X-Twilio-Email-Event-Webhook-Timestamp": timestamp}
    assert_error(post_sendgrid(client, body, headers), 403, "invalid_signature")


@pytest.mark.parametrize(
    "signature",
    [
        {"timestamp": "1" * 5000, "token": "t", "signature": "s"},
        {"timestamp": "1", "token": "\ud800", "signature": "s"},
        {"timestamp": 1, "token": "t", "signature": "s"},
        "x",
    ],
    ids=["5000 digits", "surrogate token", "numeric timestamp", "not an object"],
)
def test_odd_mailgun_signatures_are_refused_not_a_500(client, mailgun_signer, signature):
    body = json.dumps({"signature": signature, "event-data": {"event": "delivered"}}).encode()
    assert_error(post_mailgun(client, body), 406, "invalid_signature")


def test_a_dropped_message_says_so_in_its_status_until_a_recipient_gets_it(client, signer, message):
    mid = str(message.id)
    body = sendgrid_body(sendgrid_event(mid, "dropped", reason="Bounced Address"))
    post_sendgrid(client, body, signer.headers(body))
    assert status_of(message) == "dropped"  # not `sent`: the provider never tried
    body = sendgrid_body(sendgrid_event(mid, "delivered"))
    post_sendgrid(client, body, signer.headers(body))
    assert status_of(message) == "delivered"
