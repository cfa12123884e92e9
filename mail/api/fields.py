"""The fields the v1 message body is built of: addresses (one, or a list), base64 content, and
single-line text, each refusing what could inject a header. Used by mail/api/serializers.py."""

from __future__ import annotations

import base64
import binascii
import copy
import re

from drf_spectacular.utils import extend_schema_field
from email_validator import EmailNotValidError, validate_email
from rest_framework import serializers

from providers.base import Address
from providers.registry import REGISTRY

# C0 controls (CR and LF above all: header injection), DEL, the C1 controls (NEL, U+0085, among
# them) and Unicode's line and paragraph separators: each ends a line for some parser on the way
# (Python's str.splitlines, say). A tab is allowed.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")

# A 254-character address and a 256-character name, with room for quotes and brackets.
MAX_ADDRESS_CHARS = 520


def refuse_control_characters(value: str) -> str:
    if CONTROL_CHARACTERS.search(value):
        raise serializers.ValidationError("Line breaks and control characters are not allowed here.")
    return value


def single_line(**kwargs) -> serializers.CharField:
    # Passed to the constructor: DRF rebuilds declared fields from their arguments when binding.
    return serializers.CharField(validators=[refuse_control_characters], **kwargs)


def unbound_copy(field: serializers.Field) -> serializers.Field:
    """A declared field's own copy for one serializer, cheaper than DRF's deep copy, which builds
    every field again from its arguments (Serializer.get_fields): a third of validating an accept
    (docs/benchmarks.md, "Issue 21: accept CPU"). A plain field's state after construction is
    read-only but for what bind() sets on it, so a shallow copy, bound afresh, behaves as a rebuilt
    one; a list or dict field's child is bound to its parent, so it gets a copy of its own. A
    nested serializer keeps DRF's deep copy: it holds its own bound fields and context."""
    if isinstance(field, serializers.BaseSerializer):
        return copy.deepcopy(field)
    # As copy.copy does, without its detour through __reduce_ex__ (a few microseconds a field).
    copied = object.__new__(type(field))
    copied.__dict__.update(field.__dict__)
    if isinstance(field, (serializers.ListField, serializers.DictField)):
        copied.child = unbound_copy(field.child)
        copied.child.parent = copied
    return copied


def shortened(value: str, limit: int = 80) -> str:
    """A client's value quoted back in an error, cut so a huge one is not echoed whole."""
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def parse_address(value: str) -> Address:
    """'addr' or 'Name <addr>' (the name optionally quoted); IDN domains become punycode."""
    if len(value) > MAX_ADDRESS_CHARS:
        raise serializers.ValidationError(f"An address with its name is at most {MAX_ADDRESS_CHARS} characters.")
    refuse_control_characters(value)
    value = value.strip()
    name, email = "", value
    if value.endswith(">") and "<" in value:
        head, _, email = value[:-1].rpartition("<")
        name, email = head.strip(), email.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if len(name) > 256:
        raise serializers.ValidationError("The display name is longer than 256 characters.")
    try:
        # Providers do not take SMTPUTF8 (non-ASCII before the @); IDN domains are fine.
        checked = validate_email(email, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise serializers.ValidationError(f"{shortened(value)} is not a valid email address: {exc}") from exc
    return Address(email=checked.ascii_email or checked.normalized, name=name)


@extend_schema_field({"type": "string", "example": "Ann <ann@example.com>"})
class AddressField(serializers.Field):
    default_error_messages = {"invalid": "Expected an address string such as 'Name <user@example.com>'."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return parse_address(data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "array", "items": {"type": "string"}, "maxItems": REGISTRY.strictest_limits().recipients},
        ],
        "example": ["ann@example.com"],
    }
)
class AddressListField(serializers.Field):
    """One address string or a list of them."""

    default_error_messages = {
        "invalid": "Expected an address string or a list of address strings.",
        "empty": "At least one address is required.",
        "too_many": "At most {limit} addresses.",
    }

    def __init__(self, *, allow_empty=True, **kwargs):
        self.allow_empty = allow_empty
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        items = [data] if isinstance(data, str) else data
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            self.fail("invalid")
        if not items and not self.allow_empty:
            self.fail("empty")
        limit = REGISTRY.strictest_limits().recipients
        if len(items) > limit:
            self.fail("too_many", limit=limit)
        addresses, errors = [], {}
        for index, item in enumerate(items):
            try:
                addresses.append(parse_address(item))
            except serializers.ValidationError as exc:
                errors[index] = exc.detail
        if errors:
            raise serializers.ValidationError(errors)
        return tuple(addresses)


@extend_schema_field({"type": "string", "format": "byte", "description": "Base64 of the file's bytes."})
class Base64ContentField(serializers.Field):
    """Base64 text, kept as text with any line breaks removed.

    Not a CharField: its surrogate check walks the string in Python, a second per 25 MB
    attachment; text that is ASCII (one C-speed test) can hold no surrogate anyway."""

    default_error_messages = {
        "invalid": "Not valid base64.",
        "blank": "This field may not be blank: the attachment is empty.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, str) or not data.isascii():
            self.fail("invalid")
        # MIME-style line breaks inside the base64 are common and harmless.
        compact = "".join(data.split())
        try:
            decoded = base64.b64decode(compact, validate=True)
        except (binascii.Error, ValueError):
            self.fail("invalid")
        if not decoded:
            self.fail("blank")
        return compact

    def to_representation(self, value):
        return value
