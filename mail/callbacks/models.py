"""Client endpoints, the outbox of deliveries to them, and every attempt."""

import uuid

from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from mail.models import Message


class Endpoint(models.Model):
    """Where one API key wants its callbacks. The signing secret is kept encrypted
    (mail/callbacks/signing.py): a database dump alone does not reveal it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    api_key = models.ForeignKey(APIKey, on_delete=models.CASCADE, related_name="callback_endpoints")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=500, blank=True)
    # Dotted event names (mail/callbacks/events.py); empty means every event.
    event_types = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    # Why it was switched off when the service did it (failing for days), for the client and the operator.
    disabled_reason = models.TextField(blank=True)
    secret = models.TextField(help_text="Encrypted.")
    previous_secret = models.TextField(blank=True, help_text="Encrypted; still signs until previous_secret_expires_at.")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # The start of the current run of failed attempts; None while the last attempt succeeded.
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.url} ({'enabled' if self.enabled else 'disabled'})"


class Delivery(models.Model):
    """One event for one endpoint: the outbox row, written with the event that causes it."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
        DELIVERING = "delivering"  # a worker holds it until lease_expires_at
        SUCCEEDED = "succeeded"
        FAILED = "failed"  # retries exhausted, refused destination, or the endpoint disabled

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    # Gone with its message: a message withdrawn after a refused publish (mail/accepting.py) was
    # never accepted, and its `message.queued` must not be delivered.
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="callbacks")
    event_id = models.CharField(max_length=64)  # the webhook-id: the same on every attempt
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()  # as it is sent (events.CallbackEvent.to_wire)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # When a task for next_attempt_at went to SQS; None while the wait is held here (over SQS's
    # 15-minute delay) or the publish failed: housekeeping publishes it then.
    queued_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="callback_due"),
            models.Index(fields=["endpoint", "status"], name="callback_endpoint_status"),
            models.Index(fields=["endpoint", "-created_at", "-id"], name="callback_endpoint_recent"),
        ]

    def __str__(self):
        return f"{self.event_type} → {self.endpoint_id} ({self.status})"


class Attempt(models.Model):
    """One request to an endpoint and what came of it."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    outcome = models.CharField(max_length=16)  # succeeded, retrying, failed, dropped

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [models.Index(fields=["outcome"], name="callback_attempt_outcome")]

    def __str__(self):
        return f"attempt {self.number}: {self.outcome}"
