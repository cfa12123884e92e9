"""Validation of the v1 message body (docs/api.md) and the shape of a message in responses.

Every rule answers with a per-field message. The limits are the strictest of every registered
provider's (providers/registry.py), so a message accepted here fits whichever provider sends it."""

from __future__ import annotations

import mimetypes
import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from providers.base import MESSAGE_ID_KEY, Attachment, MessageRejected, OutboundMessage
from providers.registry import REGISTRY

from ..exceptions import MessageRefused
from ..models import MAX_ADDRESS_LENGTH, Message, MessageEvent
from ..search import MessageFilters
from .errors import PayloadTooLarge, naming_message
from .fields import AddressField, AddressListField, Base64ContentField, shortened, single_line, unbound_copy
from .listing import ListQuerySerializer, single_line_text
from .template_serializers import TemplateReferenceSerializer

# As the OpenAPI description documents them; validation asks the registry each time, so a
# provider registered later (a test's throwaway one) is held to as well.
LIMITS = REGISTRY.strictest_limits()

# Every pattern here is matched against the whole value (fullmatch), never anchored with `$`:
# `$` also matches before a final "\n", and a header name "Bcc\n" would pass as "Bcc".
# RFC 5322 field names: printable ASCII except the colon.
HEADER_NAME = re.compile(r"[!-9;-~]{1,100}")
# Set by us or the provider; a client's value would conflict or forge them. Content-* headers
# describe the MIME structure, which the provider builds.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Reply-To",
        "Sender",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Return-Path",
        "Received",
        "DKIM-Signature",
    )
)
# ... and every provider's own (X-SG-*, X-Mailgun-*: instructions to the provider itself).
OWN_RESERVED_HEADER_PREFIXES = ("content-",)
CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*", re.ASCII)
# Printable ASCII without quotes or angle brackets (RFC 2392: it goes into a Content-ID header).
CONTENT_ID = re.compile(r"[!#-;=?-~]{1,255}")
METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")

MAX_METADATA_KEYS = 50
MAX_METADATA_BYTES = 8000  # SendGrid: custom_args ≤ 10,000 bytes, our message id included
MAX_ATTACHMENTS = 100
# A send_at a little in the past (clock skew, a slow client) means "now".
SEND_AT_GRACE = timedelta(minutes=1)


class AttachmentSerializer(serializers.Serializer):
    filename = single_line(max_length=255)
    content = Base64ContentField()
    content_type = serializers.CharField(required=False, max_length=255)
    inline = serializers.BooleanField(default=False)
    content_id = serializers.CharField(required=False, max_length=255)

    def validate_content_type(self, value: str) -> str:
        if not CONTENT_TYPE.fullmatch(value):
            raise serializers.ValidationError("Expected a MIME type such as 'application/pdf'.")
        return value

    def validate_content_id(self, value: str) -> str:
        if not CONTENT_ID.fullmatch(value):
            raise serializers.ValidationError("A content id is printable ASCII without spaces, quotes or angle brackets.")
        return value

    def validate(self, attrs):
        if attrs["inline"] and not attrs.get("content_id"):
            raise serializers.ValidationError({"content_id": "An inline attachment needs a content_id (cid:)."})
        if not attrs["inline"] and attrs.get("content_id"):
            raise serializers.ValidationError({"content_id": "Only inline attachments take a content_id."})
        content_type = attrs.get("content_type") or mimetypes.guess_type(attrs["filename"])[0] or "application/octet-stream"
        return Attachment(
            filename=attrs["filename"],
            content_b64=attrs["content"],
            content_type=content_type,
            inline=attrs["inline"],
            content_id=attrs.get("content_id", ""),
        )


PLACEHOLDER_ID = uuid.UUID(int=0)
# What MessageCreateSerializer's "from" is copied from (mail/api/fields.py unbound_copy).
SENDER_FIELD = AddressField()


class MessageCreateSerializer(serializers.Serializer):
    """The v1 body. validated_data holds the fields of providers.base.OutboundMessage, send_at
    and ignore_suppressions."""

    to = AddressListField(allow_empty=False)
    cc = AddressListField(required=False)
    bcc = AddressListField(required=False)
    reply_to = AddressListField(required=False)
    subject = single_line(max_length=998, required=False, help_text="Required unless `template` is given.")
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    html = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    attachments = AttachmentSerializer(many=True, required=False, max_length=MAX_ATTACHMENTS)
    headers = serializers.DictField(child=single_line(max_length=998, trim_whitespace=False), required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False, max_length=LIMITS.tags)
    metadata = serializers.DictField(child=single_line(max_length=1000, trim_whitespace=False), required=False)
    send_at = serializers.DateTimeField(required=False)
    ignore_suppressions = serializers.BooleanField(
        default=False,
        help_text="Send even to addresses that hard-bounced or complained before (refused with 422 otherwise).",
    )
    template = TemplateReferenceSerializer(
        required=False,
        help_text="A stored template rendered here, instead of subject, html and text (docs/templates.md).",
    )

    def get_fields(self):
        # Every accept builds this serializer: its fields copied cheaply, not deep-copied.
        fields = {name: unbound_copy(field) for name, field in self._declared_fields.items()}
        fields["from"] = unbound_copy(SENDER_FIELD)  # a Python keyword, so not declarable as an attribute
        return fields

    def validate_headers(self, value: dict) -> dict:
        limits = REGISTRY.strictest_limits()
        for name in value:
            if not HEADER_NAME.fullmatch(name):
                raise serializers.ValidationError(f"{shortened(name)} is not a valid header name.")
            lowered = name.lower()
            if lowered in RESERVED_HEADERS or lowered.startswith(
                (*OWN_RESERVED_HEADER_PREFIXES, *limits.reserved_header_prefixes)
            ):
                raise serializers.ValidationError(f"{shortened(name)} is set by the service; use the matching field instead.")
        return value

    def validate_tags(self, value: list) -> tuple:
        limits = REGISTRY.strictest_limits()
        if len(value) > limits.tags:
            raise serializers.ValidationError(f"Ensure this field has no more than {limits.tags} elements.")
        for tag in value:
            if not PRINTABLE_ASCII.fullmatch(tag) or len(tag) > limits.tag_chars:
                raise serializers.ValidationError(f"Tags are 1-{limits.tag_chars} printable ASCII characters.")
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Tags must be unique.")
        return tuple(value)

    def validate_metadata(self, value: dict) -> dict:
        if len(value) > MAX_METADATA_KEYS:
            raise serializers.ValidationError(f"At most {MAX_METADATA_KEYS} keys.")
        for key in value:
            if not METADATA_KEY.fullmatch(key):
                raise serializers.ValidationError(f"{shortened(key)}: keys are 1-64 of A-Z a-z 0-9 _ . -")
            if key == MESSAGE_ID_KEY:
                raise serializers.ValidationError(f"{key!r} is reserved for the service.")
        if sum(len(k.encode()) + len(v.encode()) for k, v in value.items()) > MAX_METADATA_BYTES:
            raise serializers.ValidationError(f"Metadata is limited to {MAX_METADATA_BYTES} bytes.")
        return value

    def validate_send_at(self, value):
        now = timezone.now()
        if value < now - SEND_AT_GRACE:
            raise serializers.ValidationError("send_at is in the past; omit it to send now.")
        if value > now + settings.MAX_SCHEDULE_AHEAD:
            raise serializers.ValidationError(
                f"send_at is at most {settings.MAX_SCHEDULE_AHEAD.total_seconds() / 3600:.0f} hours ahead."
            )
        return value

    def validate(self, attrs):
        template = self._render_template(attrs) if "template" in attrs else None
        if "subject" not in attrs:
            raise serializers.ValidationError({"subject": "This field is required (or give a template)."})
        if not (attrs.get("text") or attrs.get("html")):
            raise serializers.ValidationError({"text": "Give text, html or both; neither may be empty."})
        self._check_recipients(attrs)
        fields = {
            "sender": attrs["from"],
            "to": attrs["to"],
            "cc": attrs.get("cc", ()),
            "bcc": attrs.get("bcc", ()),
            "reply_to": attrs.get("reply_to", ()),
            "subject": attrs["subject"],
            "text": attrs.get("text", ""),
            "html": attrs.get("html", ""),
            "attachments": tuple(attrs.get("attachments", ())),
            "headers": attrs.get("headers", {}),
            "tags": attrs.get("tags", ()),
            "metadata": attrs.get("metadata", {}),
        }
        size = message_size(fields)
        if size > settings.MAX_MESSAGE_BYTES:
            raise PayloadTooLarge(f"The message is {size} bytes; the limit is {settings.MAX_MESSAGE_BYTES} bytes.")
        # Whatever else a provider would refuse (Mailgun's 16 kB of o:/h:/v: parameters, say), known
        # before any provider is asked; the id that travels with the message has a real one's length.
        try:
            REGISTRY.check_limits(OutboundMessage(message_id=str(PLACEHOLDER_ID), **fields))
        except MessageRejected as exc:
            raise serializers.ValidationError(
                {exc.field or "non_field_errors": f"{exc.reason[0].upper()}{exc.reason[1:]}."}
            ) from exc
        fields["send_at"] = attrs.get("send_at")
        fields["ignore_suppressions"] = attrs["ignore_suppressions"]
        fields["template"] = template
        return fields

    def _render_template(self, attrs) -> tuple[str, int]:
        """Fill subject, html and text from the template; its alias and version. Rendered here, at
        accept, so every attempt and every provider carries the same bytes. Refusals (unknown
        template, variables, render) are the domain's, raised as they are (mail/api/errors.py)."""
        given = [name for name in ("subject", "html", "text") if name in attrs]
        if given:
            raise serializers.ValidationError({given[0]: f"Give a template or {given[0]}, not both: the template makes it."})
        try:
            version, rendered = self.context["templates"].render(attrs["template"])
        except MessageRefused as refusal:
            raise refusal.under("template") from None
        attrs.update(subject=rendered.subject, html=rendered.html, text=rendered.text)
        return version.template.alias, version.number

    @staticmethod
    def _check_recipients(attrs):
        seen: set[str] = set()
        for field in ("to", "cc", "bcc"):
            for address in attrs.get(field, ()):
                key = address.email.lower()
                if key in seen:
                    # SendGrid refuses the whole request for this; say so up front.
                    raise serializers.ValidationError({field: f"{address.email} appears more than once among to, cc and bcc."})
                seen.add(key)
        limit = REGISTRY.strictest_limits().recipients
        if len(seen) > limit:
            raise serializers.ValidationError({"to": f"At most {limit} recipients in to, cc and bcc together."})


class MessageBatchSerializer(serializers.ListSerializer):
    """Up to MAX_BATCH_MESSAGES messages, all valid or none accepted; errors are keyed by index."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("child", MessageCreateSerializer())
        kwargs.setdefault("allow_empty", False)
        kwargs.setdefault("max_length", settings.MAX_BATCH_MESSAGES)
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data):
        self._next_index = 0
        # Counted before any address is parsed: validating 100,000 recipients takes seconds of CPU
        # (docs/security.md), and a request's work is bounded by refusing it, not by a timeout.
        if isinstance(data, list) and (recipients := sum(raw_recipient_count(item) for item in data)) > (
            limit := settings.MAX_BATCH_RECIPIENTS
        ):
            raise serializers.ValidationError(
                {"non_field_errors": [f"A batch carries at most {limit} recipients in all, not {recipients}; split it."]}
            )
        return super().to_internal_value(data)

    def run_child_validation(self, data):
        # DRF names the index of a ValidationError, but a 413 or a template's 422 would leave which
        # message unsaid.
        index, self._next_index = self._next_index, self._next_index + 1
        try:
            return super().run_child_validation(data)
        except PayloadTooLarge as exc:
            raise PayloadTooLarge(naming_message(index, str(exc.detail))) from exc
        except MessageRefused as refusal:
            raise refusal.at(index) from None


def raw_recipient_count(item) -> int:
    """Recipients of a message body as sent, before validation (a string is one address)."""
    if not isinstance(item, dict):
        return 0
    return sum(len(value) if isinstance(value, list) else 1 for field in ("to", "cc", "bcc") if (value := item.get(field)))


def message_size(fields: dict) -> int:
    """Bytes of the message as the providers count them: bodies, decoded attachments, headers."""
    size = sum(len(fields[key].encode()) for key in ("subject", "text", "html"))
    size += sum(len(k) + len(v.encode()) for k, v in fields["headers"].items())
    size += sum(attachment.size for attachment in fields["attachments"])
    return size


class MessageEventSerializer(serializers.ModelSerializer):
    at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = MessageEvent
        fields = ["type", "provider", "status_code", "detail", "recipient", "occurred_at", "at"]


class MessageSerializer(serializers.ModelSerializer):
    events = MessageEventSerializer(many=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "status",
            "from_email",
            "recipient_count",
            "subject",
            "sandbox",
            "template_alias",
            "template_version",
            "provider",
            "provider_message_id",
            "attempts",
            "last_error",
            "created_at",
            "updated_at",
            "send_at",
            "sent_at",
            "events",
        ]


class MessageSummarySerializer(serializers.ModelSerializer):
    """A message in the list: no events (GET /api/v1/messages/{id} has them)."""

    recipients = serializers.ListField(source="recipient_addresses", child=serializers.CharField(), read_only=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    metadata = serializers.DictField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "status",
            "from_email",
            "recipients",
            "recipient_count",
            "subject",
            "sandbox",
            "tags",
            "metadata",
            "provider",
            "provider_message_id",
            "attempts",
            "created_at",
            "updated_at",
            "send_at",
            "sent_at",
        ]


class MessageQuerySerializer(ListQuerySerializer):
    """GET /api/v1/messages's query string; every filter given must match."""

    model = Message

    status = serializers.ChoiceField(choices=Message.Status.choices, required=False)
    recipient = single_line_text(MAX_ADDRESS_LENGTH, help_text="An address among to, cc and bcc (any case).")
    tag = single_line_text(255, help_text="One of the message's tags.")
    metadata = single_line_text(1100, help_text="`key:value`: the message's metadata has this key with exactly this value.")
    provider = single_line_text(32, help_text="The provider that sent it.")
    created_after = serializers.DateTimeField(required=False, help_text="Accepted at or after.")
    created_before = serializers.DateTimeField(required=False, help_text="Accepted before.")
    sent_after = serializers.DateTimeField(required=False, help_text="Handed to a provider at or after.")
    sent_before = serializers.DateTimeField(required=False, help_text="Handed to a provider before.")

    def validate_metadata(self, value: str) -> dict:
        key, colon, wanted = value.partition(":")
        if not colon or not METADATA_KEY.fullmatch(key):
            raise serializers.ValidationError("Expected key:value, the key 1-64 of A-Z a-z 0-9 _ . -")
        return {key: wanted}

    def filters(self) -> MessageFilters:
        data = self.validated_data
        return MessageFilters(
            **{name: data[name] for name in MessageFilters.__dataclass_fields__ if data.get(name) not in (None, "", {})}
        )
