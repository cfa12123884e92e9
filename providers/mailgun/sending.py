"""Mailgun's messages API: a multipart form POST to /v3/<domain>/messages with Basic auth
api:<key>; 200 with the message's id on success. The EU region is another MAILGUN_API_URL."""

from __future__ import annotations

import base64

from ..base import MessageRejected, OutboundMessage, ProviderLevelError, SendResult
from ..http import DEFAULT_CONNECTIONS, Timeouts, pooled_session, post
from ..spec import Limits

NAME = "mailgun"
# Mailgun's documented limits for one message: tags of up to 128 characters; X-Mailgun-* headers
# are instructions to Mailgun itself.
LIMITS = Limits(recipients=1000, tags=3, tag_chars=128, reserved_header_prefixes=("x-mailgun-",))
# Mailgun's messages API: sending options (o:, h: and v: parameters) are limited to 16 kB in
# total. Counted the strict way: 16,000 bytes, parameter names included.
MAX_OPTIONS_BYTES = 16_000


def option_fields(message: OutboundMessage) -> list[tuple[str, str]]:
    """The o:, h: and v: fields of the form (reply-to travels as a header)."""
    fields = []
    if message.reply_to:
        fields.append(("h:Reply-To", ", ".join(address.formatted() for address in message.reply_to)))
    fields.extend((f"h:{name}", value) for name, value in message.headers.items())
    fields.extend(("o:tag", tag) for tag in message.tags)
    fields.extend((f"v:{key}", value) for key, value in message.tracking_args.items())
    return fields


def options_size(message: OutboundMessage) -> int:
    """Bytes of the o:/h:/v: parameters, names and values, as Mailgun counts them against its limit."""
    return sum(len(name.encode()) + len(value.encode()) for name, value in option_fields(message))


def check_limits(message: OutboundMessage) -> None:
    """Refuse, without a request, what Mailgun would refuse: the next provider may take it."""
    recipients = len(message.to) + len(message.cc) + len(message.bcc)
    if recipients > LIMITS.recipients:
        raise MessageRejected(NAME, f"{recipients} recipients; Mailgun takes at most {LIMITS.recipients} per message", field="to")
    if len(message.tags) > LIMITS.tags:
        raise MessageRejected(NAME, f"{len(message.tags)} tags; Mailgun takes at most {LIMITS.tags} per message", field="tags")
    size = options_size(message)
    if size > MAX_OPTIONS_BYTES:
        raise MessageRejected(
            NAME,
            f"headers, reply_to, tags and metadata take {size} bytes together; the limit is {MAX_OPTIONS_BYTES} (Mailgun)",
            field="headers",
        )


class MailgunProvider:
    name = NAME

    def __init__(self, api_key: str, domain: str, api_url: str, timeouts: Timeouts, connections: int = DEFAULT_CONNECTIONS):
        self.api_key = api_key
        self.domain = domain
        self.url = f"{api_url.rstrip('/')}/v3/{domain}/messages"
        self.timeouts = timeouts
        self.session = pooled_session(connections)

    def send(self, message: OutboundMessage) -> SendResult:
        if not (self.api_key and self.domain):
            raise ProviderLevelError(self.name, "MAILGUN_API_KEY and MAILGUN_DOMAIN must both be set")
        check_limits(message)
        fields, files = self.build_form(message)
        response = post(
            self.name, self.session, self.url, self.timeouts, data=fields, files=files or None, auth=("api", self.api_key)
        )
        # Mailgun has the mail now: nothing here may raise, or a redelivery would send it again.
        try:
            body = response.json()
        except ValueError:
            body = None
        message_id = str(body.get("id", "")) if isinstance(body, dict) else ""
        # Mailgun answers "<id@domain>"; its events name the message without the brackets.
        return SendResult(self.name, message_id.strip("<>"), response.status_code)

    def build_form(self, message: OutboundMessage) -> tuple[list[tuple[str, str]], list[tuple[str, tuple[str, bytes, str]]]]:
        """The form fields (repeated names as repeated pairs) and the file parts."""
        fields = [("from", message.sender.formatted())]
        for name, addresses in (("to", message.to), ("cc", message.cc), ("bcc", message.bcc)):
            fields.extend((name, address.formatted()) for address in addresses)
        fields.append(("subject", message.subject))
        if message.text:
            fields.append(("text", message.text))
        if message.html:
            fields.append(("html", message.html))
        fields.extend(option_fields(message))

        files = []
        for attachment in message.attachments:
            content = base64.b64decode(attachment.content_b64)
            if attachment.inline:
                # Mailgun makes an inline part's filename its Content-ID (the HTML's cid:).
                files.append(("inline", (attachment.content_id, content, attachment.content_type)))
            else:
                files.append(("attachment", (attachment.filename, content, attachment.content_type)))
        return fields, files
