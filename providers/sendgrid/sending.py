"""SendGrid v3 mail send. The payload is built with the official `sendgrid` helpers (so it follows
SendGrid's own model of the request); it is sent over a pooled `requests` session because the
official client opens a new connection for every request."""

from __future__ import annotations

import json

from sendgrid.helpers import mail as sg
from sendgrid.helpers.mail.exceptions import SendGridException

from ..base import MessageRejected, OutboundMessage, ProviderLevelError, SendResult
from ..http import DEFAULT_CONNECTIONS, Timeouts, pooled_session, post
from ..spec import Limits

NAME = "sendgrid"
# SendGrid's documented limits for one request (its OpenAPI description and mail-send docs):
# to, cc and bcc of all personalizations together; categories of up to 255 characters. X-SG-*
# headers are instructions to SendGrid itself.
LIMITS = Limits(recipients=1000, tags=10, tag_chars=255, reserved_header_prefixes=("x-sg-",))
MAX_CUSTOM_ARGS_BYTES = 10_000


def check_limits(message: OutboundMessage) -> None:
    """Refuse, without a request, what SendGrid would refuse: the next provider may take it."""
    recipients = len(message.to) + len(message.cc) + len(message.bcc)
    if recipients > LIMITS.recipients:
        raise MessageRejected(
            NAME, f"{recipients} recipients; SendGrid takes at most {LIMITS.recipients} per request", field="to"
        )
    size = len(json.dumps(message.tracking_args, ensure_ascii=False).encode())
    if size > MAX_CUSTOM_ARGS_BYTES:
        raise MessageRejected(
            NAME, f"custom_args take {size} bytes; SendGrid's limit is {MAX_CUSTOM_ARGS_BYTES}", field="metadata"
        )
    if len(message.tags) > LIMITS.tags:
        raise MessageRejected(NAME, f"{len(message.tags)} categories; SendGrid takes at most {LIMITS.tags}", field="tags")


class SendGridProvider:
    name = NAME

    def __init__(self, api_key: str, api_url: str, timeouts: Timeouts, connections: int = DEFAULT_CONNECTIONS):
        self.api_key = api_key
        self.url = api_url.rstrip("/") + "/v3/mail/send"
        self.timeouts = timeouts
        self.session = pooled_session(connections)

    def send(self, message: OutboundMessage) -> SendResult:
        if not self.api_key:
            raise ProviderLevelError(self.name, "SENDGRID_API_KEY is not set")
        response = post(
            self.name,
            self.session,
            self.url,
            self.timeouts,
            json=self.build_payload(message),
            headers={"Authorization": f"Bearer {self.api_key}"},
        )
        return SendResult(self.name, response.headers.get("X-Message-Id", ""), response.status_code)

    def build_payload(self, message: OutboundMessage) -> dict:
        check_limits(message)
        try:
            return self._mail(message).get()
        except SendGridException as exc:
            # e.g. the helpers refuse a body that contains something shaped like a SendGrid key;
            # Mailgun has no such rule, so this is a message-level refusal: the next provider tries.
            reason = getattr(exc, "message", "") or str(exc) or type(exc).__name__
            raise MessageRejected(self.name, f"refused by the SendGrid helpers: {reason}") from exc
        except (TypeError, ValueError) as exc:
            # The helpers' own checks on a value SendGrid's model does not take: the next provider may.
            raise MessageRejected(self.name, f"could not build SendGrid's request: {exc!r}") from exc

    def _mail(self, message: OutboundMessage) -> sg.Mail:
        mail = sg.Mail()
        mail.from_email = sg.From(message.sender.email, message.sender.name or None)
        mail.subject = sg.Subject(message.subject)
        if message.text:
            mail.add_content(sg.Content("text/plain", message.text))
        if message.html:
            mail.add_content(sg.Content("text/html", message.html))

        personalization = sg.Personalization()
        for address in message.to:
            personalization.add_to(sg.To(address.email, address.name or None))
        for address in message.cc:
            personalization.add_cc(sg.Cc(address.email, address.name or None))
        for address in message.bcc:
            personalization.add_bcc(sg.Bcc(address.email, address.name or None))
        # SendGrid's spec types the top-level custom_args as a string but the personalization-level
        # one as an object, so ours travel per personalization (tests/test_sendgrid.py holds the
        # payload to the spec).
        for key, value in message.tracking_args.items():
            personalization.add_custom_arg(sg.CustomArg(key, value))
        mail.add_personalization(personalization)

        if len(message.reply_to) == 1:
            only = message.reply_to[0]
            mail.reply_to = sg.ReplyTo(only.email, only.name or None)
        elif message.reply_to:
            mail.reply_to_list = [sg.ReplyTo(a.email, a.name or None) for a in message.reply_to]

        # The helpers insert attachments and categories at the front of their lists; adding them in
        # reverse keeps the client's order (the first attachment stays first in the mail).
        for attachment in reversed(message.attachments):
            mail.add_attachment(
                sg.Attachment(
                    file_content=sg.FileContent(attachment.content_b64),
                    file_name=sg.FileName(attachment.filename),
                    file_type=sg.FileType(attachment.content_type),
                    disposition=sg.Disposition("inline" if attachment.inline else "attachment"),
                    content_id=sg.ContentId(attachment.content_id) if attachment.inline else None,
                )
            )
        for name, value in message.headers.items():
            mail.add_header(sg.Header(name, value))
        for tag in reversed(message.tags):
            mail.add_category(sg.Category(tag))
        return mail
