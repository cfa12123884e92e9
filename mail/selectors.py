"""Reads. A key sees only its own messages."""

from django.shortcuts import get_object_or_404

from .models import Message


def message_for_key(api_key, message_id) -> Message:
    return get_object_or_404(Message.objects.prefetch_related("events"), pk=message_id, api_key=api_key)
