"""The Mailgun provider: every v1 field in the form Mailgun's messages API documents, checked at
the simulator, which parses the multipart body the way Mailgun does."""

import base64
import hashlib

import pytest

from providers.base import Address, Attachment, OutboundMessage, ProviderLevelError
from providers.http import Timeouts
from providers.mailgun.sending import MailgunProvider

from .support import SIMULATOR_URL
from .test_sendgrid import RICH


@pytest.fixture
def mailgun():
    return MailgunProvider("test-key", "test.example.com", SIMULATOR_URL, Timeouts(connect=1, read=2))


def test_every_field_arrives_as_mailgun_documents_it(mailgun, simulator):
    result = mailgun.send(RICH)

    (request,) = simulator.requests("mailgun")
    assert request["path"] == "/v3/test.example.com/messages"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"api:test-key").decode()
    form = request["form"]
    assert form["from"] == ["Zoë Sender <sender@example.com>"]
    assert form["to"] == ["A <a@example.com>", "b@xn--exmple-cua.com"]
    assert form["cc"] == ["Cé <c@example.com>"]
    assert form["bcc"] == ["d@example.com"]
    assert form["subject"] == ["Ihre Bestellung 日本"]
    assert form["text"] == ["plain"] and form["html"] == [RICH.html]
    assert form["h:Reply-To"] == ["Support <r1@example.com>, r2@example.com"]
    assert form["h:X-Campaign"] == ["autumn"]
    assert form["h:List-Unsubscribe"] == ["<mailto:u@example.com>"]
    assert form["o:tag"] == ["welcome", "eu"]
    assert form["v:order_id"] == ["42"] and form["v:tenant"] == ["acme"]
    assert form["v:mailer_message_id"] == [RICH.message_id]

    files = [(f["field"], f["filename"], f["content_type"]) for f in request["files"]]
    assert files == [
        ("attachment", "invoice.pdf", "application/pdf"),
        ("inline", "logo", "image/png"),  # the filename of an inline part is its cid
        ("attachment", "notes.txt", "text/plain"),
    ]
    for sent, original in zip(request["files"], RICH.attachments, strict=True):
        assert sent["sha256"] == hashlib.sha256(base64.b64decode(original.content_b64)).hexdigest()

    assert result.provider == "mailgun" and result.status_code == 200
    assert f"<{result.provider_message_id}>" == request["provider_message_id"]
    assert result.provider_message_id.endswith("@test.example.com")


def test_a_message_without_attachments_and_html_only(mailgun, simulator):
    message = OutboundMessage(
        message_id="m2", sender=Address("s@example.com"), to=(Address("t@example.com"),), subject="S", html="<b>only</b>"
    )
    mailgun.send(message)
    (request,) = simulator.requests("mailgun", accepted=True)
    assert "text" not in request["form"] and request["form"]["html"] == ["<b>only</b>"]
    assert request["files"] == []


def test_a_large_binary_attachment_arrives_byte_identical(mailgun, simulator):
    content = bytes(range(256)) * 8192  # 2 MiB, every byte value
    message = OutboundMessage(
        message_id="m3",
        sender=Address("s@example.com"),
        to=(Address("t@example.com"),),
        subject="S",
        text="T",
        attachments=(Attachment("data.bin", base64.b64encode(content).decode(), "application/octet-stream"),),
    )
    mailgun.send(message)
    (request,) = simulator.requests("mailgun", accepted=True)
    assert request["files"][0]["sha256"] == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize("key,domain", [("", "test.example.com"), ("key", "")], ids=["no key", "no domain"])
def test_missing_configuration_is_provider_level_without_a_request(simulator, key, domain):
    with pytest.raises(ProviderLevelError, match="MAILGUN_API_KEY and MAILGUN_DOMAIN"):
        MailgunProvider(key, domain, SIMULATOR_URL, Timeouts(connect=1, read=1)).send(RICH)
    assert simulator.requests() == []
