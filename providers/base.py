"""The provider-neutral outbound message, the result of a send, and the errors providers raise.

OutboundMessage.to_payload() is also the wire format of the delivery task: the API builds it once
and every worker step (retry, failover, requeue) rebuilds the same message from it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .events import DeliveryEvent

#: Metadata key under which our message id travels to the provider (custom_args / v: variables),
#: so delivery events can be matched back to the message.
MESSAGE_ID_KEY = "mailer_message_id"
RFC5322_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


@dataclass(frozen=True)
class Address:
    email: str
    name: str = ""

    def formatted(self) -> str:
        """'Name <addr>', the name quoted where RFC 5322 specials require it and left in UTF-8:
        the providers encode headers themselves, and operators read what we sent."""
        if not self.name:
            return self.email
        name = self.name
        if RFC5322_SPECIALS.search(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{self.email}>"

    def to_payload(self) -> dict:
        return {"email": self.email, "name": self.name} if self.name else {"email": self.email}

    @classmethod
    def from_payload(cls, data: Mapping) -> Address:
        return cls(email=data["email"], name=data.get("name", ""))


def decoded_length(content_b64: str) -> int:
    """Bytes that base64 text (without line breaks) decodes to: 3 per 4 characters, less padding."""
    return len(content_b64) * 3 // 4 - content_b64[-2:].count("=")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_b64: str
    content_type: str
    inline: bool = False
    content_id: str = ""

    @property
    def size(self) -> int:
        return decoded_length(self.content_b64)

    def to_payload(self) -> dict:
        data = {"filename": self.filename, "content": self.content_b64, "content_type": self.content_type}
        if self.inline:
            data.update(inline=True, content_id=self.content_id)
        return data

    @classmethod
    def from_payload(cls, data: Mapping) -> Attachment:
        return cls(
            filename=data["filename"],
            content_b64=data["content"],
            content_type=data["content_type"],
            inline=bool(data.get("inline", False)),
            content_id=data.get("content_id", ""),
        )


@dataclass(frozen=True)
class OutboundMessage:
    message_id: str
    sender: Address
    to: tuple[Address, ...]
    subject: str
    text: str = ""
    html: str = ""
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def tracking_args(self) -> dict[str, str]:
        """What the provider must echo back in its events: the client's metadata and our id."""
        return {**self.metadata, MESSAGE_ID_KEY: self.message_id}

    def to_payload(self) -> dict:
        return {
            "from": self.sender.to_payload(),
            "to": [a.to_payload() for a in self.to],
            "cc": [a.to_payload() for a in self.cc],
            "bcc": [a.to_payload() for a in self.bcc],
            "reply_to": [a.to_payload() for a in self.reply_to],
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "attachments": [a.to_payload() for a in self.attachments],
            "headers": dict(self.headers),
            "tags": list(self.tags),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_payload(cls, message_id: str, data: Mapping) -> OutboundMessage:
        addresses = lambda key: tuple(Address.from_payload(a) for a in data.get(key, ()))  # noqa: E731
        return cls(
            message_id=message_id,
            sender=Address.from_payload(data["from"]),
            to=addresses("to"),
            cc=addresses("cc"),
            bcc=addresses("bcc"),
            reply_to=addresses("reply_to"),
            subject=data["subject"],
            text=data.get("text", ""),
            html=data.get("html", ""),
            attachments=tuple(Attachment.from_payload(a) for a in data.get("attachments", ())),
            headers=dict(data.get("headers", {})),
            tags=tuple(data.get("tags", ())),
            metadata=dict(data.get("metadata", {})),
        )


@dataclass(frozen=True)
class SendResult:
    provider: str
    provider_message_id: str
    status_code: int
    # What became of the mail, when the provider knows at once (the sandbox, providers/sandbox.py);
    # a real provider reports it later, by webhook.
    events: tuple[DeliveryEvent, ...] = ()


class ProviderError(Exception):
    """A send that did not succeed. The subclass says what to do next (docs/architecture.md)."""

    kind = "error"

    def __init__(self, provider: str, reason: str, *, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason
        self.status_code = status_code
        self.retry_after = retry_after


class TransientError(ProviderError):
    """Timeouts, connection errors, 429 and 5xx: the same provider may succeed later."""

    kind = "transient"


class ProviderLevelError(ProviderError):
    """401/403, unknown domain and other account or configuration problems: use the next provider."""

    kind = "provider"


class MessageRejected(ProviderError):
    """400/413/422 caused by the message itself: another provider's rules may still accept it.

    `field` names the message field at fault when a provider's own check found it before any
    request (the API reports it there, as a validation error of that field)."""

    kind = "message"

    def __init__(self, provider: str, reason: str, *, status_code: int | None = None, field: str | None = None):
        super().__init__(provider, reason, status_code=status_code)
        self.field = field
