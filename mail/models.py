"""What the service knows about each message. The mail body itself travels in the SQS task
(providers.base.OutboundMessage.to_payload); the row holds status, envelope summary and history."""

import uuid

from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from providers.registry import FACTORIES as PROVIDER_FACTORIES


class Message(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled"  # held in the database until its send_at is near
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"  # accepted by a provider
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        COMPLAINED = "complained"
        FAILED = "failed"  # every provider exhausted
        CANCELED = "canceled"  # by the client, before any worker took it
        # Only between a refused publish and the row's deletion: no worker may claim it.
        WITHDRAWN = "withdrawn"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    api_key = models.ForeignKey(APIKey, on_delete=models.PROTECT, related_name="messages")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    from_email = models.CharField(max_length=320)
    # Comma-separated to/cc/bcc addresses, for the operator's search; the full envelope is in the task.
    recipients = models.TextField()
    recipient_count = models.PositiveIntegerField()
    subject = models.CharField(max_length=998)
    provider = models.CharField(max_length=32, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # How far the delivery has gone: each retry or failover publishes a task for the next step,
    # and a task older than the row's step is superseded (a late duplicate) and does nothing.
    step = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # A worker's claim: while it is in the future, no other worker may send this message.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    send_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The task's payload while the message is scheduled (too far ahead for an SQS delay).
    scheduled_payload = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        # mail.metrics: the send-latency window is a range of sent_at.
        indexes = [models.Index(fields=["sent_at"], name="message_sent_at")]

    def __str__(self):
        return f"{self.id} ({self.status})"


class MessageEvent(models.Model):
    class Type(models.TextChoices):
        QUEUED = "queued"
        RETRY_SCHEDULED = "retry_scheduled"  # a transient failure; the same provider again later
        FAILOVER = "failover"  # this provider is exhausted or refused; the next one takes over
        SKIPPED = "skipped"  # this provider's circuit is open: the next one is tried at once
        WAITING = "waiting"  # every provider's circuit is open: the task waits in SQS
        FAILED = "failed"  # every provider exhausted
        ERROR = "error"  # a fault of ours; the task is redelivered
        DEAD_LETTERED = "dead_lettered"  # its task reached the dead-letter queue
        REQUEUED = "requeued"  # an operator sent it again, with fresh retries
        DISCARDED = "discarded"  # an operator gave up on it
        SCHEDULED = "scheduled"  # held until its send_at is near
        RELEASED = "released"  # its send_at is near: queued with an SQS delay
        CANCELED = "canceled"  # by the client
        SENT = "sent"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=32, choices=Type.choices)
    provider = models.CharField(max_length=32, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        # mail.metrics counts events by type and provider at every scrape: an index-only scan.
        indexes = [models.Index(fields=["type", "provider"], name="event_type_provider")]

    def __str__(self):
        return f"{self.type} {self.provider}".strip()


class DeadLetter(models.Model):
    """A message SQS moved to the dead-letter queue, as the drainer found it there."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for an operator
        REQUEUED = "requeued"
        DISCARDED = "discarded"

    # SQS's id of the queue message: the same on every receive, so draining is idempotent.
    sqs_message_id = models.CharField(max_length=128, unique=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="dead_letters")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    task_name = models.CharField(max_length=200, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    # The task's arguments when the body decoded as a delivery task, else None (see raw_body).
    task_args = models.JSONField(null=True, blank=True)
    raw_body = models.TextField(blank=True)
    reason = models.TextField(blank=True)
    receive_count = models.PositiveIntegerField(default=0)
    first_queued_at = models.DateTimeField(null=True, blank=True)  # when the task was first published
    first_seen_at = models.DateTimeField(default=timezone.now)  # by the drainer
    last_seen_at = models.DateTimeField(default=timezone.now)
    handled_by = models.CharField(max_length=150, blank=True)
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-first_seen_at"]

    def __str__(self):
        return f"dead letter {self.sqs_message_id} ({self.status})"


class ProviderSetting(models.Model):
    """An operator's switch for one provider, read by workers within PROVIDER_SETTINGS_CACHE_SECONDS.
    Providers without a row keep their place from MAIL_PROVIDERS, after those with one."""

    name = models.CharField(max_length=32, unique=True, choices=[(name, name) for name in sorted(PROVIDER_FACTORIES)])
    enabled = models.BooleanField(default=True)
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower goes first.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]

    def __str__(self):
        return f"{self.name} ({'enabled' if self.enabled else 'disabled'}, priority {self.priority})"


class IdempotencyRecord(models.Model):
    """A client's Idempotency-Key and the answer it got, so a retry gets the same answer."""

    api_key = models.ForeignKey(APIKey, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    # SHA-256 of the request body as parsed (key order and spacing do not matter).
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)  # None: still being answered
    response_body = models.JSONField(null=True, blank=True)
    location = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="one_record_per_client_key")]

    def __str__(self):
        return f"{self.key} ({self.status_code or 'in progress'})"
