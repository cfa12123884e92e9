"""The lists' query strings and pages: GET /api/v1/messages and GET /api/v1/suppressions.

A cursor is opaque to clients; this module alone writes and reads it (URL-safe base64 of
`[created_at, id]` in JSON). Unknown or repeated parameters are refused, not ignored: a client's
misspelt filter would otherwise return every row as if it had matched."""

from __future__ import annotations

import base64
import binascii
import json

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from ..search import Page, Position, page
from .fields import refuse_control_characters, shortened

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_CURSOR_CHARS = 200


def encode_cursor(created_at, pk) -> str:
    raw = json.dumps([created_at.isoformat(), str(pk)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str, model) -> Position:
    """The position a cursor of this API names; ValidationError for anything else."""
    invalid = serializers.ValidationError("Not a cursor from this list: pass next_cursor or previous_cursor as given.")
    if len(text) > MAX_CURSOR_CHARS or not text.isascii():
        raise invalid
    try:
        created_at, pk = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        moment = parse_datetime(created_at)
        pk = model._meta.pk.to_python(pk)
    except (binascii.Error, ValueError, TypeError, DjangoValidationError, UnicodeDecodeError) as exc:
        raise invalid from exc
    if moment is None or moment.tzinfo is None:
        raise invalid
    return Position(moment, pk)


class ListQuerySerializer(serializers.Serializer):
    """What every list takes; a subclass adds its filters and names its model."""

    model = None

    limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=DEFAULT_LIMIT)
    after = serializers.CharField(required=False, help_text="next_cursor of a page: the rows older than it.")
    before = serializers.CharField(required=False, help_text="previous_cursor of a page: the rows newer than it.")

    def validate_after(self, value):
        return decode_cursor(value, self.model)

    def validate_before(self, value):
        return decode_cursor(value, self.model)

    def validate(self, attrs):
        if "after" in attrs and "before" in attrs:
            raise serializers.ValidationError({"before": ["Give after or before, not both."]})
        for start, end in (("created_after", "created_before"), ("sent_after", "sent_before")):
            if attrs.get(start) and attrs.get(end) and attrs[start] >= attrs[end]:
                raise serializers.ValidationError({end: [f"{end} must be later than {start}."]})
        return attrs


def read_query(request, serializer_class: type[ListQuerySerializer]) -> ListQuerySerializer:
    """The query string, validated; 400 naming any parameter the list does not take."""
    params = request.query_params
    known = serializer_class().fields.keys()
    unknown = [name for name in params if name not in known]
    repeated = [name for name in params if name in known and len(params.getlist(name)) > 1]
    problems = {shortened(name): ["Not a parameter of this list."] for name in unknown[:10]}
    problems.update({name: ["Given more than once."] for name in repeated})
    if problems:
        raise serializers.ValidationError(problems)
    serializer = serializer_class(data={name: params[name] for name in params})
    serializer.is_valid(raise_exception=True)
    return serializer


def page_of(queryset, query: ListQuerySerializer) -> Page:
    data = query.validated_data
    return page(queryset, data["limit"], after=data.get("after"), before=data.get("before"))


def page_response(page: Page, item_serializer) -> Response:
    rows = page.rows
    return Response(
        {
            "data": item_serializer(rows, many=True).data,
            "has_more": page.has_more,
            "next_cursor": encode_cursor(rows[-1].created_at, rows[-1].pk) if rows else None,
            "previous_cursor": encode_cursor(rows[0].created_at, rows[0].pk) if rows else None,
        }
    )


def single_line_text(max_length: int, **kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=max_length, validators=[refuse_control_characters], required=False, **kwargs)


def page_schema(name: str, item_serializer) -> serializers.Serializer:
    return inline_serializer(
        name,
        fields={
            "data": item_serializer(many=True),
            "has_more": serializers.BooleanField(help_text="More rows beyond this page in the direction it was read."),
            "next_cursor": serializers.CharField(
                allow_null=True, help_text="Pass as `after` for the next (older) page; null on an empty page."
            ),
            "previous_cursor": serializers.CharField(
                allow_null=True, help_text="Pass as `before` for the previous (newer) page; null on an empty page."
            ),
        },
    )


def query_parameters(serializer_class: type[ListQuerySerializer]) -> list[OpenApiParameter]:
    """The query string as OpenAPI parameters, from the serializer that reads it."""
    parameters = []
    for name, field in serializer_class().fields.items():
        schema: dict = {"type": "string"}
        if isinstance(field, serializers.IntegerField):
            schema = {"type": "integer", "minimum": field.min_value, "maximum": field.max_value, "default": field.default}
        elif isinstance(field, serializers.DateTimeField):
            schema = {"type": "string", "format": "date-time"}
        elif isinstance(field, serializers.ChoiceField):
            schema = {"type": "string", "enum": list(field.choices)}
        elif isinstance(field, serializers.CharField) and field.max_length:
            schema = {"type": "string", "maxLength": field.max_length}
        parameters.append(OpenApiParameter(name, schema, OpenApiParameter.QUERY, description=str(field.help_text or "")))
    return parameters
