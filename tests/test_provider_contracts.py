"""Contracts with the providers, field by field: every field of the v1 body, taken through the
API's own validation, arrives at SendGrid as a request valid by SendGrid's OpenAPI description
and at Mailgun in the multipart form its messages API documents (field names, repetition,
filenames, content types), checked where the simulator parses it as Mailgun does. Each
provider's documented limits are enforced before any request is made; the simulator's SendGrid
answers are checked against the same description, so the tests' fake does not drift."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import pytest
import requests
from django.utils import timezone
from openapi_core.testing import MockRequest, MockResponse

from mail.api.serializers import MessageCreateSerializer
from providers.base import Address, MessageRejected, OutboundMessage
from providers.http import Timeouts
from providers.mailgun import sending as mailgun_module
from providers.mailgun.sending import MailgunProvider
from providers.sendgrid import sending as sendgrid_module
from providers.sendgrid.sending import SendGridProvider

from .support import SIMULATOR_URL
from .test_sendgrid import SENDGRID, SPEC, validate_against_sendgrid_spec

MID = "5b6f0c1e-7d2a-4e55-9a0b-3c4d5e6f7a8b"
BASE = {"from": "shop@example.com", "to": "ann@example.com", "subject": "Hello", "text": "plain body"}
ABSENT = object()
PDF = base64.b64encode(b"%PDF-1.4 invoice").decode()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n logo").decode()


def outbound(changes: dict) -> OutboundMessage:
    """The provider-neutral message the API would queue for this v1 body."""
    body = {**BASE, **changes}
    body = {key: value for key, value in body.items() if value is not None}
    serializer = MessageCreateSerializer(data=body)
    serializer.is_valid(raise_exception=True)
    fields = dict(serializer.validated_data)
    fields.pop("send_at")
    fields.pop("ignore_suppressions")
    fields.pop("template")
    return OutboundMessage(message_id=MID, **fields)


def dig(data, path: str):
    for part in path.split("."):
        if isinstance(data, list):
            data = data[int(part)]
        elif part in data:
            data = data[part]
        else:
            return ABSENT
    return data


@pytest.fixture
def mailgun():
    return MailgunProvider("test-key", "test.example.com", SIMULATOR_URL, Timeouts(connect=1, read=5))


def sent_to_mailgun(mailgun, simulator, message: OutboundMessage) -> dict:
    mailgun.send(message)
    (request,) = simulator.requests("mailgun", accepted=True)
    return request


# (v1 body changes, SendGrid: {path in the JSON: value}, Mailgun: {form field: values} and "files")
FIELDS = [
    (
        "from, non-ASCII name and IDN domain",
        {"from": "Zoë Müller <zoe@bücher.de>"},
        {"from": {"email": "zoe@xn--bcher-kva.de", "name": "Zoë Müller"}},
        {"from": ["Zoë Müller <zoe@xn--bcher-kva.de>"]},
    ),
    ("from, bare address", {"from": "shop@example.com"}, {"from": {"email": "shop@example.com"}}, {"from": ["shop@example.com"]}),
    (
        "to, a list with names",
        {"to": ["Ann <ann@example.com>", "bob@münchen.de"]},
        {"personalizations.0.to": [{"email": "ann@example.com", "name": "Ann"}, {"email": "bob@xn--mnchen-3ya.de"}]},
        {"to": ["Ann <ann@example.com>", "bob@xn--mnchen-3ya.de"]},
    ),
    (
        "to, one string",
        {"to": "ann@example.com"},
        {"personalizations.0.to": [{"email": "ann@example.com"}]},
        {"to": ["ann@example.com"]},
    ),
    (
        "cc",
        {"cc": ["Cé <c@example.com>", "d@example.com"]},
        {"personalizations.0.cc": [{"email": "c@example.com", "name": "Cé"}, {"email": "d@example.com"}]},
        {"cc": ["Cé <c@example.com>", "d@example.com"]},
    ),
    ("bcc", {"bcc": "e@example.com"}, {"personalizations.0.bcc": [{"email": "e@example.com"}]}, {"bcc": ["e@example.com"]}),
    (
        "reply_to, one",
        {"reply_to": "Support <help@example.com>"},
        {"reply_to": {"email": "help@example.com", "name": "Support"}, "reply_to_list": ABSENT},
        {"h:Reply-To": ["Support <help@example.com>"]},
    ),
    (
        "reply_to, a list",
        {"reply_to": ["Support <help@example.com>", "sales@example.com"]},
        {"reply_to_list": [{"email": "help@example.com", "name": "Support"}, {"email": "sales@example.com"}], "reply_to": ABSENT},
        {"h:Reply-To": ["Support <help@example.com>, sales@example.com"]},
    ),
    (
        "reply_to, a name with a comma",
        {"reply_to": ['"Doe, Jane" <jane@example.com>']},
        {"reply_to": {"email": "jane@example.com", "name": "Doe, Jane"}},
        {"h:Reply-To": ['"Doe, Jane" <jane@example.com>']},
    ),
    (
        "subject, non-ASCII",
        {"subject": "Ihre Bestellung – 日本 🎉"},
        {"subject": "Ihre Bestellung – 日本 🎉"},
        {"subject": ["Ihre Bestellung – 日本 🎉"]},
    ),
    ("text only", {}, {"content": [{"type": "text/plain", "value": "plain body"}]}, {"text": ["plain body"], "html": ABSENT}),
    (
        "html only, empty text",
        {"text": "", "html": "<p>only html</p>"},
        {"content": [{"type": "text/html", "value": "<p>only html</p>"}]},
        {"html": ["<p>only html</p>"], "text": ABSENT},
    ),
    (
        "text and html, text first",
        {"html": "<p>both</p>"},
        {"content": [{"type": "text/plain", "value": "plain body"}, {"type": "text/html", "value": "<p>both</p>"}]},
        {"text": ["plain body"], "html": ["<p>both</p>"]},
    ),
    (
        "attachment, non-ASCII filename",
        {"attachments": [{"filename": "Rechnung März.pdf", "content": PDF, "content_type": "application/pdf"}]},
        {
            "attachments": [
                {"content": PDF, "type": "application/pdf", "filename": "Rechnung März.pdf", "disposition": "attachment"}
            ]
        },
        {"files": [("attachment", "Rechnung März.pdf", "application/pdf", PDF)]},
    ),
    (
        "attachment, content type from the filename",
        {"attachments": [{"filename": "notes.txt", "content": "aGk="}]},
        {"attachments": [{"content": "aGk=", "type": "text/plain", "filename": "notes.txt", "disposition": "attachment"}]},
        {"files": [("attachment", "notes.txt", "text/plain", "aGk=")]},
    ),
    (
        "inline image with a content id",
        {
            "html": '<p><img src="cid:logo@shop"></p>',
            "attachments": [
                {"filename": "logo.png", "content": PNG, "content_type": "image/png", "inline": True, "content_id": "logo@shop"},
                {"filename": "a.pdf", "content": PDF, "content_type": "application/pdf"},
            ],
        },
        {
            "attachments": [
                {"content": PNG, "type": "image/png", "filename": "logo.png", "disposition": "inline", "content_id": "logo@shop"},
                {"content": PDF, "type": "application/pdf", "filename": "a.pdf", "disposition": "attachment"},
            ]
        },
        # Mailgun makes an inline part's filename its Content-ID.
        {"files": [("inline", "logo@shop", "image/png", PNG), ("attachment", "a.pdf", "application/pdf", PDF)]},
    ),
    (
        "headers",
        {"headers": {"X-Campaign": "autumn", "List-Unsubscribe": "<mailto:u@example.com>"}},
        {"headers": {"X-Campaign": "autumn", "List-Unsubscribe": "<mailto:u@example.com>"}},
        {"h:X-Campaign": ["autumn"], "h:List-Unsubscribe": ["<mailto:u@example.com>"]},
    ),
    ("tags", {"tags": ["welcome", "eu", "b2c"]}, {"categories": ["welcome", "eu", "b2c"]}, {"o:tag": ["welcome", "eu", "b2c"]}),
    (
        "metadata and our id",
        {"metadata": {"order_id": "42", "tenant": "Ærø"}},
        {"personalizations.0.custom_args": {"order_id": "42", "tenant": "Ærø", "mailer_message_id": MID}, "custom_args": ABSENT},
        {"v:order_id": ["42"], "v:tenant": ["Ærø"], "v:mailer_message_id": [MID]},
    ),
    (
        "no metadata: our id alone",
        {},
        {"personalizations.0.custom_args": {"mailer_message_id": MID}},
        {"v:mailer_message_id": [MID]},
    ),
    # Scheduling and suppression are ours: neither travels to a provider.
    ("send_at", {"send_at": "SOON"}, {"send_at": ABSENT}, {"o:deliverytime": ABSENT}),
    ("ignore_suppressions", {"ignore_suppressions": True}, {"ignore_suppressions": ABSENT}, {"ignore_suppressions": ABSENT}),
]


def _resolve(changes: dict) -> dict:
    if changes.get("send_at") == "SOON":
        return {**changes, "send_at": (timezone.now() + timedelta(hours=1)).isoformat()}
    return changes


@pytest.mark.parametrize("changes,expected", [(f[1], f[2]) for f in FIELDS], ids=[f[0] for f in FIELDS])
def test_each_v1_field_reaches_sendgrid_valid_by_its_spec(changes, expected):
    payload = SENDGRID.build_payload(outbound(_resolve(changes)))
    validate_against_sendgrid_spec(payload)
    for path, value in expected.items():
        assert dig(payload, path) == value, path


@pytest.mark.parametrize("changes,expected", [(f[1], f[3]) for f in FIELDS], ids=[f[0] for f in FIELDS])
def test_each_v1_field_reaches_mailgun_as_its_api_documents(mailgun, simulator, changes, expected):
    request = sent_to_mailgun(mailgun, simulator, outbound(_resolve(changes)))
    form = request["form"]
    for name, value in expected.items():
        if name == "files":
            assert [(f["field"], f["filename"], f["content_type"]) for f in request["files"]] == [v[:3] for v in value]
            for sent, (*_, content) in zip(request["files"], value, strict=True):
                assert sent["sha256"] == hashlib.sha256(base64.b64decode(content)).hexdigest()
        else:
            assert form.get(name, ABSENT) == value, name
    # Only documented parameters: from, to/cc/bcc, subject, text, html and o:/h:/v: options.
    assert set(form) <= {"from", "to", "cc", "bcc", "subject", "text", "html"} | {k for k in form if k[:2] in ("o:", "h:", "v:")}
    if "files" not in expected:
        assert request["files"] == []


# --- 1000 recipients, both providers ----------------------------------------------------------


def thousand_recipients() -> OutboundMessage:
    return outbound(
        {
            "to": "Ann <ann@example.com>",
            "cc": [f"cc{i}@example.com" for i in range(499)],
            "bcc": [f"Bcc Nummer {i} <bcc{i}@exämple.com>" for i in range(500)],
        }
    )


def test_1000_recipients_are_valid_for_sendgrid():
    payload = SENDGRID.build_payload(thousand_recipients())
    validate_against_sendgrid_spec(payload)
    (personalization,) = payload["personalizations"]
    assert (len(personalization["to"]), len(personalization["cc"]), len(personalization["bcc"])) == (1, 499, 500)
    assert personalization["bcc"][-1] == {"email": "bcc499@xn--exmple-cua.com", "name": "Bcc Nummer 499"}


def test_1000_recipients_reach_mailgun_as_repeated_fields(mailgun, simulator):
    form = sent_to_mailgun(mailgun, simulator, thousand_recipients())["form"]
    assert (len(form["to"]), len(form["cc"]), len(form["bcc"])) == (1, 499, 500)
    assert form["bcc"][-1] == "Bcc Nummer 499 <bcc499@xn--exmple-cua.com>"


# --- each provider's limits, enforced before a request ---------------------------------------


def message(**changes) -> OutboundMessage:
    fields = dict(message_id=MID, sender=Address("s@example.com"), to=(Address("t@example.com"),), subject="S", text="T")
    fields.update(changes)
    return OutboundMessage(**fields)


def many(n: int) -> tuple[Address, ...]:
    return tuple(Address(f"r{i}@example.com") for i in range(n))


def custom_args_of_size(size: int) -> dict:
    """Metadata whose custom_args (with our id) are exactly `size` bytes of JSON."""
    base = len(json.dumps({"k": "", "mailer_message_id": MID}).encode())
    return {"k": "x" * (size - base)}


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"to": many(600), "bcc": many(401)}, "1001 recipients"),
        ({"metadata": custom_args_of_size(10_001)}, "custom_args take 10001 bytes"),
        ({"tags": tuple(f"t{i}" for i in range(11))}, "11 categories"),
    ],
    ids=["1001 recipients", "custom_args over 10,000 bytes", "11 categories"],
)
def test_sendgrid_refuses_what_breaks_its_limits_without_a_request(simulator, changes, words):
    provider = SendGridProvider("test-key", SIMULATOR_URL, Timeouts(connect=1, read=1))
    with pytest.raises(MessageRejected, match=words):
        provider.send(message(**changes))
    assert simulator.requests() == []


def test_sendgrid_at_its_limits_is_valid():
    payload = SENDGRID.build_payload(
        message(to=many(1000), metadata=custom_args_of_size(10_000), tags=tuple(f"t{i}" for i in range(10)))
    )
    validate_against_sendgrid_spec(payload)
    assert (
        len(json.dumps(payload["personalizations"][0]["custom_args"], ensure_ascii=False).encode())
        == sendgrid_module.MAX_CUSTOM_ARGS_BYTES
    )


def options_of_size(size: int, **changes) -> dict:
    """A header that makes the o:/h:/v: parameters of message(**changes) exactly `size` bytes."""
    base = mailgun_module.options_size(message(headers={"X-Pad": ""}, **changes))
    return {"X-Pad": "p" * (size - base)}


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"to": many(1), "cc": many(1000)}, "1001 recipients"),
        ({"tags": ("a", "b", "c", "d")}, "4 tags"),
        ({"headers": options_of_size(16_001)}, "take 16001 bytes"),
    ],
    ids=["1001 recipients", "4 tags", "options over 16 kB"],
)
def test_mailgun_refuses_what_breaks_its_limits_without_a_request(mailgun, simulator, changes, words):
    with pytest.raises(MessageRejected, match=words):
        mailgun.send(message(**changes))
    assert simulator.requests() == []


def test_mailgun_at_its_limits_is_sent(mailgun, simulator):
    form = sent_to_mailgun(
        mailgun,
        simulator,
        message(
            to=many(1000), tags=("a", "b", "c"), headers=options_of_size(mailgun_module.MAX_OPTIONS_BYTES, tags=("a", "b", "c"))
        ),
    )["form"]
    assert len(form["to"]) == 1000 and form["o:tag"] == ["a", "b", "c"]
    options = sum(len(k.encode()) + len(v.encode()) for k, values in form.items() if k[:2] in ("o:", "h:", "v:") for v in values)
    assert options == mailgun_module.MAX_OPTIONS_BYTES


def test_the_apis_limits_keep_every_message_within_both_providers(mailgun, simulator):
    """The largest metadata and the most tags the API takes still fit SendGrid and Mailgun."""
    metadata = {f"key{i:02d}": "v" * 150 for i in range(50)}  # 50 keys, 7,750 bytes
    largest = outbound({"metadata": metadata, "tags": ["a" * 128, "b" * 128, "c" * 128]})
    validate_against_sendgrid_spec(SENDGRID.build_payload(largest))
    assert sent_to_mailgun(mailgun, simulator, largest)["form"]["o:tag"] == ["a" * 128, "b" * 128, "c" * 128]


def test_the_api_refuses_options_over_mailguns_16_kb_up_front(api_client):
    headers = {f"X-Pad-{i}": "p" * 900 for i in range(19)}  # each header is fine; together > 16 kB
    body = {**BASE, "headers": headers}
    response = api_client.post("/api/v1/messages", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "the limit is 16000" in response.json()["error"]["fields"]["headers"][0]


# --- SendGrid's answers, as the simulator gives them, by SendGrid's description -------------


def _validate_sendgrid_answer(payload: dict, response: requests.Response) -> None:
    request = MockRequest(
        "https://api.sendgrid.com",
        "post",
        "/v3/mail/send",
        data=json.dumps(payload).encode(),
        content_type="application/json",
        headers={"Authorization": "Bearer key"},
    )
    SPEC.validate_response(
        request,
        MockResponse(
            response.content,
            status_code=response.status_code,
            content_type=response.headers.get("Content-Type", "application/json"),
        ),
    )


@pytest.mark.parametrize(
    "behaviour,headers,status",
    [
        (None, {"Authorization": "Bearer key"}, 202),
        (None, {}, 401),
        ({"status": 413}, {"Authorization": "Bearer key"}, 413),
        ({"status": 500}, {"Authorization": "Bearer key"}, 500),
        ({"status": 400}, {"Authorization": "Bearer key"}, 400),
    ],
    ids=["202", "401", "413", "500", "400"],
)
def test_the_simulators_sendgrid_answers_are_valid_by_sendgrids_spec(simulator, behaviour, headers, status):
    if behaviour:
        simulator.behave("sendgrid", **behaviour)
    payload = SENDGRID.build_payload(message())
    response = requests.post(f"{SIMULATOR_URL}/v3/mail/send", json=payload, headers=headers, timeout=5)
    assert response.status_code == status
    _validate_sendgrid_answer(payload, response)
    if status == 202:
        assert response.headers["X-Message-Id"]


def test_the_simulators_sendgrid_400_for_a_bad_request_is_valid_by_sendgrids_spec(simulator):
    payload = {"personalizations": [{"to": []}], "from": {"email": "s@example.com"}, "subject": "S"}
    response = requests.post(f"{SIMULATOR_URL}/v3/mail/send", json=payload, headers={"Authorization": "Bearer key"}, timeout=5)
    assert response.status_code == 400
    _validate_sendgrid_answer(payload, response)
