"""The mail itself as SES v2 takes it: `Content.Simple` when subject, text and HTML carry the
whole message, `Content.Raw` (a MIME message built with the standard library's `email` package)
when it has attachments, inline images or the client's own headers.

Simple is preferred where it can carry the message: SES builds the MIME itself and the request
is a fraction of the size. Simple's own `Headers` refuse several headers SES manages and its
`Attachments` cannot mark an inline image's place in a multipart/related part the way a mail
client expects, so anything beyond text, HTML and our id goes as Raw, where what we validated
is what the recipient gets."""

from __future__ import annotations

import base64
import email.utils
from email.headerregistry import Address as MimeAddress
from email.message import EmailMessage
from email.policy import SMTP

from ..base import Address, Attachment, OutboundMessage

# Our message id travels as this header as well as an EmailTags entry: the tag is what SES's
# events carry (mail.tags), the header survives into the mail itself (and mail.headers).
MESSAGE_ID_HEADER = "X-Mailer-Message-Id"
UTF8 = "UTF-8"


def needs_raw(message: OutboundMessage) -> bool:
    return bool(message.attachments or message.headers)


def simple(message: OutboundMessage) -> dict:
    body = {}
    if message.text:
        body["Text"] = {"Data": message.text, "Charset": UTF8}
    if message.html:
        body["Html"] = {"Data": message.html, "Charset": UTF8}
    return {
        "Simple": {
            "Subject": {"Data": message.subject, "Charset": UTF8},
            "Body": body,
            "Headers": [{"Name": MESSAGE_ID_HEADER, "Value": message.message_id}],
        }
    }


def raw(message: OutboundMessage) -> dict:
    return {"Raw": {"Data": mime_bytes(message)}}


def mime_bytes(message: OutboundMessage) -> bytes:
    """The whole mail, CRLF line ends, every header ASCII (RFC 2047 for non-ASCII names and
    subjects): what SES sends as it is. Bcc is not a header; it travels in Destination."""
    mime = EmailMessage(policy=SMTP)
    mime["From"] = _mime_address(message.sender)
    mime["To"] = tuple(_mime_address(a) for a in message.to)
    if message.cc:
        mime["Cc"] = tuple(_mime_address(a) for a in message.cc)
    if message.reply_to:
        mime["Reply-To"] = tuple(_mime_address(a) for a in message.reply_to)
    mime["Subject"] = message.subject
    mime[MESSAGE_ID_HEADER] = message.message_id
    for name, value in message.headers.items():
        mime[name] = value

    inline = [a for a in message.attachments if a.inline]
    attached = [a for a in message.attachments if not a.inline]
    if message.text:
        mime.set_content(message.text, charset="utf-8")
    if message.html:
        if message.text:
            mime.add_alternative(message.html, subtype="html", charset="utf-8")
            html_part = mime.get_payload()[-1]
        else:
            mime.set_content(message.html, subtype="html", charset="utf-8")
            html_part = mime
        for attachment in inline:
            _add(html_part.add_related, attachment, cid=f"<{attachment.content_id}>", disposition="inline")
    elif not message.text:
        mime.set_content("", charset="utf-8")
    if not message.html:
        # No HTML to refer to them: inline images travel as inline parts of the mixed message.
        attached = [*inline, *attached]
    for attachment in attached:
        if attachment.inline:
            _add(mime.add_attachment, attachment, cid=f"<{attachment.content_id}>", disposition="inline")
        else:
            _add(mime.add_attachment, attachment, disposition="attachment")
    return mime.as_bytes()


def _add(add, attachment: Attachment, **params) -> None:
    maintype, _, subtype = attachment.content_type.partition("/")
    data = base64.b64decode(attachment.content_b64)
    add(data, maintype=maintype, subtype=subtype or "octet-stream", filename=attachment.filename, **params)


def _mime_address(address: Address) -> MimeAddress:
    local, _, domain = address.email.rpartition("@")
    return MimeAddress(display_name=address.name, username=local, domain=domain)


def destination_address(address: Address) -> str:
    """An address for Destination, FromEmailAddress and ReplyToAddresses: SES takes a display
    name there quoted where RFC 5322 needs it and, when not ASCII, as an RFC 2047 encoded-word."""
    return email.utils.formataddr((address.name, address.email), charset="utf-8")
