"""What the callbacks' endpoints take and answer (mail/api/callbacks.py)."""

from rest_framework import serializers

from ..callbacks import sender
from ..callbacks.destination import Refused
from ..callbacks.events import EVENT_TYPES
from ..callbacks.models import Attempt, Delivery, Endpoint


def checked_url(value: str) -> str:
    """Refused with a clear 400 when the URL is not https (unless allowed) or its host is, or
    resolves to, a loopback, link-local, private or metadata address."""
    checked = sender.check(value)
    if isinstance(checked, Refused):
        raise serializers.ValidationError(f"This URL cannot receive callbacks: {checked.reason}.")
    return value


class EndpointSerializer(serializers.ModelSerializer):
    url = serializers.URLField(max_length=2000, validators=[checked_url])
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES),
        required=False,
        max_length=len(EVENT_TYPES),
        help_text="The events this endpoint wants; empty or absent: every event.",
    )
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False, default=True)

    class Meta:
        model = Endpoint
        fields = ["id", "url", "event_types", "description", "enabled", "disabled_reason", "created_at", "updated_at"]
        read_only_fields = ["id", "disabled_reason", "created_at", "updated_at"]

    def validate_event_types(self, value: list) -> list:
        return sorted(set(value))


class TestResultSerializer(serializers.Serializer):
    delivered = serializers.BooleanField(help_text="Whether the endpoint answered the test event with a 2xx.")
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


def test_result(outcome: sender.Outcome) -> dict:
    return {"delivered": outcome.succeeded, "status_code": outcome.status_code, "error": outcome.error}


class CreatedEndpointSerializer(EndpointSerializer):
    secret = serializers.CharField(help_text="whsec_…: shown this once; verify callbacks with it.")
    test = TestResultSerializer()

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret", "test"]


class ChangedEndpointSerializer(EndpointSerializer):
    test = TestResultSerializer(required=False, help_text="Present when this change re-enabled the endpoint.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "test"]


class RotatedSecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new whsec_… secret, shown this once.")
    previous_secret_expires_at = serializers.DateTimeField(help_text="Until then callbacks are signed with both secrets.")


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["number", "started_at", "status_code", "latency_ms", "response_excerpt", "error", "outcome"]


class DeliverySerializer(serializers.ModelSerializer):
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "message",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "payload",
            "attempt_log",
        ]
