"""The SendGrid provider: what it sends is valid by SendGrid's own OpenAPI description and maps
every v1 field; what it gets back is classified (providers/http.py). HTTP goes to the simulator."""

import json
from pathlib import Path

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from providers.base import Address, Attachment, OutboundMessage, ProviderLevelError
from providers.http import Timeouts
from providers.sendgrid.sending import SendGridProvider

from .support import SIMULATOR_URL

SENDGRID = SendGridProvider("key", "https://api.sendgrid.com", Timeouts(connect=1, read=1))
SPEC = OpenAPI.from_file_path(str(Path(__file__).parent / "specs" / "sendgrid-mail-v3.json"))


def validate_against_sendgrid_spec(payload: dict, authorization: str = "Bearer key") -> None:
    """Raises if SendGrid's OpenAPI description says the request is invalid."""
    request = MockRequest(
        "https://api.sendgrid.com",
        "post",
        "/v3/mail/send",
        data=json.dumps(payload).encode(),
        content_type="application/json",
        headers={"Authorization": authorization},
    )
    SPEC.validate_request(request)


RICH = OutboundMessage(
    message_id="3f1c2a4e-0000-4000-8000-000000000001",
    sender=Address("sender@example.com", "Zoë Sender"),
    to=(Address("a@example.com", "A"), Address("b@xn--exmple-cua.com")),
    cc=(Address("c@example.com", "Cé"),),
    bcc=(Address("d@example.com"),),
    reply_to=(Address("r1@example.com", "Support"), Address("r2@example.com")),
    subject="Ihre Bestellung 日本",
    text="plain",
    html='<p>html <img src="cid:logo"></p>',
    attachments=(
        Attachment("invoice.pdf", "JVBERi0=", "application/pdf"),
        Attachment("logo.png", "iVBORw0K", "image/png", inline=True, content_id="logo"),
        Attachment("notes.txt", "aGk=", "text/plain"),
    ),
    headers={"X-Campaign": "autumn", "List-Unsubscribe": "<mailto:u@example.com>"},
    tags=("welcome", "eu"),
    metadata={"order_id": "42", "tenant": "acme"},
)


def test_rich_message_is_valid_by_sendgrids_spec_and_maps_every_field():
    payload = SENDGRID.build_payload(RICH)
    validate_against_sendgrid_spec(payload)

    assert payload["from"] == {"email": "sender@example.com", "name": "Zoë Sender"}
    assert payload["subject"] == "Ihre Bestellung 日本"
    (personalization,) = payload["personalizations"]
    assert personalization["to"] == [{"email": "a@example.com", "name": "A"}, {"email": "b@xn--exmple-cua.com"}]
    assert personalization["cc"] == [{"email": "c@example.com", "name": "Cé"}]
    assert personalization["bcc"] == [{"email": "d@example.com"}]
    assert personalization["custom_args"] == {"order_id": "42", "tenant": "acme", "mailer_message_id": RICH.message_id}
    assert "custom_args" not in payload  # the spec types the top-level one as a string
    assert payload["reply_to_list"] == [{"email": "r1@example.com", "name": "Support"}, {"email": "r2@example.com"}]
    assert payload["content"] == [{"type": "text/plain", "value": "plain"}, {"type": "text/html", "value": RICH.html}]
    assert payload["attachments"] == [
        {"content": "JVBERi0=", "type": "application/pdf", "filename": "invoice.pdf", "disposition": "attachment"},
        {"content": "iVBORw0K", "type": "image/png", "filename": "logo.png", "disposition": "inline", "content_id": "logo"},
        {"content": "aGk=", "type": "text/plain", "filename": "notes.txt", "disposition": "attachment"},
    ]
    assert payload["headers"] == {"X-Campaign": "autumn", "List-Unsubscribe": "<mailto:u@example.com>"}
    assert payload["categories"] == ["welcome", "eu"]


def minimal(**changes) -> OutboundMessage:
    fields = dict(message_id="m", sender=Address("s@example.com"), to=(Address("t@example.com"),), subject="S", text="T")
    fields.update(changes)
    return OutboundMessage(**fields)


@pytest.mark.parametrize(
    "message",
    [
        minimal(),
        minimal(text="", html="<b>only html</b>"),
        minimal(reply_to=(Address("only@example.com", "Only"),)),
        minimal(to=tuple(Address(f"r{i}@example.com") for i in range(1000))),
        minimal(to=(Address("t@example.com"),), cc=tuple(Address(f"c{i}@example.com") for i in range(999))),
    ],
    ids=["minimal", "html only", "single reply-to", "1000 recipients", "1 to + 999 cc"],
)
def test_edge_cases_are_valid_by_sendgrids_spec(message):
    payload = SENDGRID.build_payload(message)
    validate_against_sendgrid_spec(payload)
    if message.reply_to and len(message.reply_to) == 1:
        assert payload["reply_to"] == {"email": "only@example.com", "name": "Only"}
    if not message.text:
        assert payload["content"] == [{"type": "text/html", "value": "<b>only html</b>"}]


def test_the_validator_does_reject_what_sendgrid_would():
    payload = SENDGRID.build_payload(minimal())
    payload["custom_args"] = {"top-level": "object"}  # the quirk: the spec types it as a string
    with pytest.raises(Exception, match="not valid"):
        validate_against_sendgrid_spec(payload)


# --- over HTTP, against the simulator ---------------------------------------------------------


@pytest.fixture
def sendgrid():
    return SendGridProvider("test-key", SIMULATOR_URL, Timeouts(connect=1, read=1))


def test_success_returns_the_x_message_id(sendgrid, simulator):
    result = sendgrid.send(minimal())
    (request,) = simulator.requests("sendgrid")
    assert result.provider == "sendgrid"
    assert result.status_code == 202
    assert result.provider_message_id == request["provider_message_id"] != ""
    assert request["headers"]["Authorization"] == "Bearer test-key"


def test_missing_api_key_is_a_provider_level_error_without_a_request(simulator):
    with pytest.raises(ProviderLevelError, match="SENDGRID_API_KEY is not set"):
        SendGridProvider("", SIMULATOR_URL, Timeouts(connect=1, read=1)).send(minimal())
    assert simulator.requests() == []


def test_connections_are_reused_across_sends(sendgrid, simulator):
    for _ in range(5):
        sendgrid.send(minimal())
    requests = simulator.requests("sendgrid", accepted=True)
    assert len(requests) == 5
    assert len({request["connection"] for request in requests}) == 1
