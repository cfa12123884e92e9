"""Contracts with Amazon SES v2: every field of the v1 body, taken through the API's own
validation, makes a SendEmail request that botocore's own SES v2 service model accepts (its
ParamValidator against the real input shape, not a schema of ours), and what it carries reads
back as the message: from the Simple content's fields, or from the Raw MIME parsed by the
standard library. SES's per-call limits are enforced before any request; its answers, from the
embedded AWS server (moto's SES v2) and from the provider simulator speaking SES's errors, are
classified as the delivery pipeline needs."""

from __future__ import annotations

import base64
import dataclasses
import email.header
import email.utils
import os
from email import message_from_bytes
from email.policy import default

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from providers.base import MESSAGE_ID_KEY, Attachment, MessageRejected, ProviderLevelError, TransientError
from providers.ses import content
from providers.ses.sending import MAX_RECIPIENTS_PER_CALL, SesProvider

from .support import SIMULATOR_URL
from .test_provider_contracts import MID, PDF, PNG, outbound

SEND_EMAIL = get_session().get_service_model("sesv2").operation_model("SendEmail").input_shape

FIELDS = [
    ("from, non-ASCII name and IDN domain", {"from": "Zoë Müller <zoe@bücher.de>"}),
    ("to, a list with names", {"to": ["Ann <ann@example.com>", "bob@münchen.de"]}),
    ("cc and bcc", {"cc": ["Cé <c@example.com>", "d@example.com"], "bcc": "e@example.com"}),
    ("reply_to, a list, a comma in a name", {"reply_to": ['"Doe, Jane" <jane@example.com>', "sales@example.com"]}),
    ("subject, non-ASCII", {"subject": "Ihre Bestellung – 日本 🎉"}),
    ("html only", {"text": "", "html": "<p>only html</p>"}),
    ("text and html", {"html": "<p>both ü</p>"}),
    ("tags and metadata", {"tags": ["orders", "eu-west"], "metadata": {"order_id": "42", "shop": "north_1"}}),
    ("headers", {"headers": {"X-Campaign": "spring ☀", "List-Unsubscribe": "<mailto:u@example.com>"}}),
    (
        "attachment, non-ASCII filename",
        {"attachments": [{"filename": "Rechnung März.pdf", "content": PDF, "content_type": "application/pdf"}]},
    ),
    (
        "inline image with html",
        {
            "html": '<p><img src="cid:logo"></p>',
            "attachments": [
                {"filename": "logo.png", "content": PNG, "content_type": "image/png", "inline": True, "content_id": "logo"}
            ],
        },
    ),
    (
        "everything",
        {
            "from": "Shöp <shop@bücher.de>",
            "to": ["Ann <ann@example.com>"],
            "cc": "c@example.com",
            "bcc": "e@example.com",
            "reply_to": "Support <help@example.com>",
            "html": '<p>hi <img src="cid:logo"></p>',
            "headers": {"X-Campaign": "spring"},
            "tags": ["orders"],
            "metadata": {"order_id": "42"},
            "attachments": [
                {"filename": "a.pdf", "content": PDF, "content_type": "application/pdf"},
                {"filename": "logo.png", "content": PNG, "content_type": "image/png", "inline": True, "content_id": "logo"},
            ],
        },
    ),
]


def ses_request(message, **options) -> dict:
    return SesProvider(client=None, **options).build_request(message)


def addresses(values) -> list[tuple[str, str]]:
    return [(name, addr) for name, addr in email.utils.getaddresses([str(v) for v in values])]


def decoded(value: str) -> str:
    return str(email.header.make_header(email.header.decode_header(value)))


def read_back(request: dict) -> dict:
    """What SES would send, as the neutral message's fields."""
    names = lambda values: [(decoded(n), a) for n, a in addresses(values)]  # noqa: E731
    destination = request["Destination"]
    found = {
        "from": names([request["FromEmailAddress"]]),
        "bcc": names(destination.get("BccAddresses", [])),
        "tags": {t["Name"]: t["Value"] for t in request["EmailTags"]},
        "envelope_to": names(destination.get("ToAddresses", [])),
        "envelope_cc": names(destination.get("CcAddresses", [])),
    }
    if "Simple" in request["Content"]:
        simple = request["Content"]["Simple"]
        return {
            **found,
            "to": found["envelope_to"],
            "cc": found["envelope_cc"],
            "reply_to": names(request.get("ReplyToAddresses", [])),
            "subject": simple["Subject"]["Data"],
            "text": simple["Body"].get("Text", {}).get("Data", ""),
            "html": simple["Body"].get("Html", {}).get("Data", ""),
            "headers": {h["Name"]: h["Value"] for h in simple["Headers"]},
            "attachments": [],
        }
    mime = message_from_bytes(request["Content"]["Raw"]["Data"], policy=default)
    assert "Bcc" not in mime  # Bcc travels in the envelope only
    text = mime.get_body(("plain",))
    html = mime.get_body(("html",))
    attachments = [
        {
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "content": part.get_content(),
            "inline": part.get_content_disposition() == "inline",
            "content_id": (part["Content-ID"] or "").strip("<>"),
        }
        for part in mime.walk()
        if part.get_content_disposition() in ("attachment", "inline")
    ]
    structural = {"from", "to", "cc", "reply-to", "subject", "mime-version", "content-type", "content-transfer-encoding"}
    return {
        **found,
        "from": names(mime.get_all("From")),
        "to": names(mime.get_all("To")),
        "cc": names(mime.get_all("Cc", [])),
        "reply_to": names(mime.get_all("Reply-To", [])),
        "subject": mime["Subject"],
        # CRLF on the wire (the SMTP policy); the set_content of a body ends it with a line break.
        "text": text.get_content().replace("\r\n", "\n").removesuffix("\n") if text else "",
        "html": html.get_content().replace("\r\n", "\n").removesuffix("\n") if html else "",
        "headers": {k: str(v) for k, v in mime.items() if k.lower() not in structural},
        "attachments": attachments,
    }


@pytest.mark.parametrize("changes", [f[1] for f in FIELDS], ids=[f[0] for f in FIELDS])
def test_every_v1_field_makes_a_request_botocore_accepts_and_reads_back(changes):
    message = outbound(changes)
    request = ses_request(
        message, configuration_set="mailer-events", from_arn="arn:aws:ses:us-east-1:123456789012:identity/bücher.de"
    )
    report = ParamValidator().validate(request, SEND_EMAIL)
    assert not report.has_errors(), report.generate_report()
    assert request["ConfigurationSetName"] == "mailer-events"
    assert ("Raw" in request["Content"]) == bool(message.attachments or message.headers)

    back = read_back(request)
    pairs = lambda addrs: [(a.name, a.email) for a in addrs]  # noqa: E731
    assert back["from"] == pairs([message.sender])
    assert back["to"] == back["envelope_to"] == pairs(message.to)
    assert back["cc"] == back["envelope_cc"] == pairs(message.cc)
    assert back["bcc"] == pairs(message.bcc)
    assert back["reply_to"] == pairs(message.reply_to)
    assert back["subject"] == message.subject
    assert back["text"] == message.text and back["html"] == message.html
    assert back["headers"] == {content.MESSAGE_ID_HEADER: MID, **message.headers}
    assert back["tags"] == {MESSAGE_ID_KEY: MID, **message.metadata, **{f"tag-{t}": "true" for t in message.tags}}
    # Inline images sit in the HTML's multipart/related part, attachments after it: in order within each kind.
    assert sorted(back["attachments"], key=lambda a: not a["inline"]) == [
        {
            "filename": a.filename,
            "content_type": a.content_type,
            "content": base64.b64decode(a.content_b64),
            "inline": a.inline,
            "content_id": a.content_id,
        }
        for a in sorted(message.attachments, key=lambda a: not a.inline)
    ]


def test_ses_limits_are_enforced_before_any_request():
    many = [f"r{i}@example.com" for i in range(MAX_RECIPIENTS_PER_CALL)]
    assert ses_request(outbound({"to": many[:40], "cc": many[40:]}))  # 50: one call
    with pytest.raises(MessageRejected, match="51 recipients") as refused:
        ses_request(outbound({"to": many, "bcc": "one-more@example.com"}))
    assert refused.value.field == "to" and refused.value.status_code is None
    with pytest.raises(MessageRejected, match="SES tags take") as refused:
        ses_request(outbound({"tags": ["black friday"]}))
    assert refused.value.field == "tags"
    with pytest.raises(MessageRejected, match="SES tags take") as refused:
        ses_request(outbound({"metadata": {"order": "42/7"}}))
    assert refused.value.field == "metadata"
    with pytest.raises(MessageRejected, match="used twice"):
        ses_request(outbound({"tags": ["orders"], "metadata": {"tag-orders": "1"}}))
    big = base64.b64encode(b"\0" * (31 * 1024 * 1024)).decode()  # 31 MB: over 40 MB once MIME-encoded
    huge = dataclasses.replace(outbound({}), attachments=(Attachment("x.bin", big, "application/octet-stream"),))
    with pytest.raises(MessageRejected, match="SES takes at most 41943040"):
        ses_request(huge)


# --- answers: the embedded AWS server's SES v2, and SES's errors from the simulator ------------


def moto_provider(**options) -> SesProvider:
    return SesProvider.connect(
        region="us-east-1",
        endpoint_url=os.environ["SES_ENDPOINT_URL"],
        access_key_id="test",
        secret_access_key="test",
        connect_timeout=1,
        read_timeout=5,
        connections=2,
        **options,
    )


def test_sends_through_moto_and_an_unverified_sender_is_rejected():
    provider = moto_provider()
    sender = "verified-sender@ses-contract.example"
    body = {"from": sender, "attachments": [{"filename": "a.pdf", "content": PDF, "content_type": "application/pdf"}]}
    with pytest.raises(MessageRejected) as refused:
        provider.send(outbound({"from": "nobody@unverified.example"}))
    assert refused.value.status_code == 400 and "MessageRejected" in refused.value.reason
    provider.client.create_email_identity(EmailIdentity=sender)
    for changes in ({"from": sender}, body):  # Simple, then Raw
        result = provider.send(outbound(changes))
        assert result.provider == "ses" and result.provider_message_id and result.status_code == 200


@pytest.mark.parametrize(
    ("status", "code", "kind", "opens_for"),
    [
        (429, "TooManyRequestsException", TransientError, None),
        (500, "InternalFailure", TransientError, None),
        (400, "MessageRejected", MessageRejected, None),
        (400, "MailFromDomainNotVerifiedException", ProviderLevelError, None),
        (400, "AccountSuspendedException", ProviderLevelError, None),
        (400, "SendingPausedException", ProviderLevelError, 120.0),
        (403, "AccessDeniedException", ProviderLevelError, None),
    ],
)
def test_ses_errors_are_classified(simulator, status, code, kind, opens_for):
    simulator.behave("ses", status=status, error_code=code)
    provider = SesProvider.connect(
        region="us-east-1",
        endpoint_url=SIMULATOR_URL,
        access_key_id="test",
        secret_access_key="test",
        connect_timeout=1,
        read_timeout=5,
        connections=2,
        paused_circuit_seconds=120.0,
    )
    with pytest.raises(kind) as raised:
        provider.send(outbound({}))
    assert type(raised.value) is kind and code in raised.value.reason and raised.value.status_code == status
    assert raised.value.retry_after == opens_for
    assert len(simulator.requests("ses")) == 1  # botocore made one attempt: retrying is ours


def test_a_connection_failure_is_transient():
    provider = SesProvider.connect(
        region="us-east-1", endpoint_url="http://127.0.0.1:9", access_key_id="t", secret_access_key="t",
        connect_timeout=1, read_timeout=1, connections=1,
    )  # fmt: skip
    with pytest.raises(TransientError, match="request failed"):
        provider.send(outbound({}))
