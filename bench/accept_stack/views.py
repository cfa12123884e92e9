"""The endpoint: authenticate, validate, .delay(), 202."""

from email.utils import parseaddr

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accept_stack.tasks import send_message


class AddressField(serializers.CharField):
    """An address with an optional display name: "Ann Example <ann@example.com>"."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        _, address = parseaddr(value)
        try:
            validate_email(address)
        except ValidationError:
            raise serializers.ValidationError("Enter a valid email address.") from None
        return value


class MessageSerializer(serializers.Serializer):
    to = serializers.ListField(child=AddressField(max_length=320), min_length=1, max_length=50)
    subject = serializers.CharField(max_length=998)
    text = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    html = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=128), required=False, max_length=10)
    metadata = serializers.DictField(child=serializers.CharField(max_length=1000), required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = AddressField(max_length=320)  # a keyword in Python: not a class attribute
        return fields

    def validate(self, attrs):
        if not attrs.get("text") and not attrs.get("html"):
            raise serializers.ValidationError("Give text, html or both.")
        return attrs


class SendMessage(APIView):
    def post(self, request):
        serializer = MessageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = send_message.delay(serializer.validated_data)
        return Response({"id": task.id, "status": "queued"}, status=status.HTTP_202_ACCEPTED)
