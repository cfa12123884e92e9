"""The OpenAPI description's parts that drf-spectacular cannot infer from the code."""

import copy
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "mail.api.auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key from `manage.py create_api_key`."}


ERROR = inline_serializer(
    "Error",
    fields={
        "error": inline_serializer(
            "ErrorDetail",
            fields={
                "type": serializers.CharField(help_text="validation_error, parse_error, not_authenticated, not_found, ..."),
                "message": serializers.CharField(),
                "fields": serializers.DictField(required=False, help_text="Per-field messages, shaped like the request."),
            },
        )
    },
)


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ERROR, description=description)


COMMON_ERRORS = {
    400: error("Invalid request; `fields` says what is wrong where."),
    401: error(
        "No API key, or an unknown or revoked one (type not_authenticated or authentication_failed), or an expired one "
        "(key_expired)."
    ),
    405: error("Method not allowed."),
}
FORBIDDEN = error(
    "insufficient_scope: the key lacks the scope this needs (the message and `fields.scope` name it); "
    "address_not_allowed: the key may not be used from the client's address (its network allow-list)."
)

ACCEPTED = inline_serializer(
    "Accepted", fields={"id": serializers.UUIDField(), "status": serializers.CharField(help_text="queued")}
)

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Retry safely: the same key within 24 h returns the first answer and queues nothing (≤ 255 characters).",
)

_BATCH_ITEMS = inline_serializer(
    "BatchItem",
    many=True,
    fields={
        "id": serializers.UUIDField(required=False, help_text="The accepted message's id."),
        "status": serializers.CharField(required=False, help_text="queued or scheduled"),
        "error": inline_serializer(
            "BatchItemError",
            fields={"type": serializers.CharField(help_text="queue_unavailable"), "message": serializers.CharField()},
            required=False,
            help_text="Present instead of id and status when this message was not accepted.",
        ),
    },
)

BATCH_ACCEPTED = OpenApiResponse(
    inline_serializer("BatchAccepted", fields={"data": _BATCH_ITEMS}),
    description="Every message accepted; `data` in request order.",
)
BATCH_PARTLY_ACCEPTED = OpenApiResponse(
    inline_serializer("BatchPartlyAccepted", fields={"data": _BATCH_ITEMS}),
    description="Some messages accepted, some not (the queue refused them): `data` in request order, each item an id or an error.",
)


def batch_size_limits(result, generator, request, public):
    """drf-spectacular leaves a list serializer's min/max length out; the batch's are documented."""
    for path in result["paths"].values():
        operation = path.get("post", {})
        if operation.get("operationId") == "send_message_batch":
            body = operation["requestBody"]["content"]["application/json"]["schema"]
            body.update(minItems=1, maxItems=settings.MAX_BATCH_MESSAGES)
    return result


RATE_LIMITED = {
    "description": "More than API_RATE_LIMIT requests for this API key (type `throttled`): wait Retry-After seconds.",
    "headers": {
        "Retry-After": {"schema": {"type": "integer", "minimum": 0}, "description": "Seconds until the key may send again."}
    },
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": "Units the key may spend per window (API_RATE_LIMIT).",
    "RateLimit-Remaining": "Units left in the window after this request.",
    "RateLimit-Reset": "Seconds until the window has room for another unit.",
    "RateLimit-Policy": "The limit and its window in seconds, as `limit;w=seconds`.",
}


def rate_limits_and_a_future_send_at(result, generator, request, public):
    """Every operation taking an API key is rate-limited (mail/api/auth.py ApiKeyRateThrottle):
    its 429 is documented, and every answer's RateLimit headers. A send_at example in the future, made
    when the schema is (one to two hours ahead, on the hour): a client's "try it out" of a past one
    would be refused."""
    for operations in result["paths"].values():
        for operation in operations.values():
            if any(ApiKeyAuthenticationScheme.name in requirement for requirement in operation.get("security", [])):
                operation["responses"]["429"] = copy.deepcopy(RATE_LIMITED)
                for answer in operation["responses"].values():
                    answer["headers"] = {
                        **answer.get("headers", {}),
                        **{
                            name: {"schema": {"type": "string"}, "description": description}
                            for name, description in RATE_LIMIT_HEADERS.items()
                        },
                    }
    ahead = (timezone.now() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    for component in result.get("components", {}).get("schemas", {}).values():
        if "send_at" in component.get("properties", {}):
            component["properties"]["send_at"]["example"] = ahead.isoformat().replace("+00:00", "Z")
    return result
