"""What the service knows about each message. The mail body itself travels in the SQS task
(mail/delivery_task.py); the row holds status, envelope summary and history."""

import uuid

from django.db import models
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from providers.registry import REGISTRY

# The widest address any column keeps (RFC 5321 allows 254; a bounce may name a longer one).
MAX_ADDRESS_LENGTH = 320


def provider_choices() -> list[tuple[str, str]]:
    # A callable, so that a provider added to the registry needs no migration.
    return [(name, name) for name in REGISTRY.names()]


class Team(models.Model):
    """A tenant: the unit that owns API keys, messages and suppressions. A key of one team never
    sees another team's data."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


# The team every key made before teams existed was moved to (migration 0009), and the one
# `manage.py create_api_key` uses when told no other.
DEFAULT_TEAM_NAME = "default"


class Scope(models.TextChoices):
    """What an API key may do (docs/api.md, "Keys, teams and scopes")."""

    MESSAGES_SEND = "messages:send"
    MESSAGES_READ = "messages:read"
    SUPPRESSIONS_MANAGE = "suppressions:manage"
    WEBHOOKS_MANAGE = "webhooks:manage"
    TEMPLATES_MANAGE = "templates:manage"
    # Destructive, so never among a key's scopes unless asked for (default_scopes).
    ERASURES_MANAGE = "erasures:manage"


def every_scope() -> list[str]:
    return list(Scope.values)


def default_scopes() -> list[str]:
    """What a key may do when nobody says: everything but erasing people's data."""
    return [scope for scope in Scope.values if scope != Scope.ERASURES_MANAGE]


class ApiKeyProfile(models.Model):
    """What djangorestframework-api-key's APIKey does not hold: the key's team, its scopes and the
    networks it may be used from. Its expiry is the APIKey's own expiry_date. Read with the key in
    one query (mail/api/auth.py)."""

    api_key = models.OneToOneField(APIKey, on_delete=models.CASCADE, primary_key=True, related_name="profile")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="key_profiles")
    # Lists in JSON (not PostgreSQL arrays): the local run's SQLite keeps them too.
    scopes = models.JSONField(default=default_scopes, help_text="Of Scope's values.")
    # Sends walk the whole pipeline but reach no provider: providers/sandbox.py decides the outcome.
    sandbox = models.BooleanField(default=False, help_text="Mail is accepted and followed as usual, but never sent.")
    allowed_networks = models.JSONField(
        default=list,
        blank=True,
        help_text="Addresses or CIDR networks (IPv4 or IPv6) the key may be used from; empty: anywhere.",
    )

    def __str__(self):
        return f"{self.api_key_id} ({self.team_id})"


class Message(models.Model):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled"  # held in the database until its send_at is near
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"  # accepted by a provider
        # The provider accepted it and then did not even try (its own suppression list, ...).
        DROPPED = "dropped"
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        COMPLAINED = "complained"
        FAILED = "failed"  # every provider exhausted
        CANCELED = "canceled"  # by the client or an operator, before any worker took it
        # Only between a refused publish and the row's deletion: no worker may claim it.
        WITHDRAWN = "withdrawn"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    api_key = models.ForeignKey(APIKey, on_delete=models.PROTECT, related_name="messages")
    # Reads are by team (a key sees its team's mail). No index of its own: every index of the
    # list (Meta) leads with it.
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="messages", db_index=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    from_email = models.CharField(max_length=MAX_ADDRESS_LENGTH)
    # Comma-separated to/cc/bcc addresses, for the operator's search; the full envelope is in the task.
    recipients = models.TextField()
    # The same addresses lower-cased, a JSON list: the list's exact, case-insensitive recipient
    # filter is a containment a GIN index answers on PostgreSQL (migration 0008), as are the tag
    # and metadata filters.
    recipient_addresses = models.JSONField(default=list)
    # The client's tags and metadata as sent: filtered on by the list, echoed in its callbacks
    # (mail/callbacks/events.py).
    tags = models.JSONField(default=list)
    metadata = models.JSONField(default=dict)
    recipient_count = models.PositiveIntegerField()
    # Sent with a sandbox key: delivered by providers/sandbox.py, never by a real provider, and
    # never touching the suppression list.
    sandbox = models.BooleanField(default=False)
    # When a person it was sent to or from was erased (mail/erasure.py): whatever turns up of it
    # later (its task in the dead-letter queue) is not stored.
    erased_at = models.DateTimeField(null=True, blank=True)
    subject = models.CharField(max_length=998)
    # The template it was rendered from at accept (mail/templating/), if any: its alias and the
    # version used. Names only, so deleting the template later changes nothing here.
    template_alias = models.CharField(max_length=100, blank=True)
    template_version = models.PositiveIntegerField(null=True, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # How far the delivery has gone: each retry or failover publishes a task for the next step,
    # and a task older than the row's step is superseded (a late duplicate) and does nothing.
    step = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # A worker's claim: while it is in the future, no other worker may send this message.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # When an attempt began whose outcome nobody heard (its worker died holding the claim): set
    # on taking the claim over, cleared once the providers said whether they took it, or the
    # grace period ran out (mail/ambiguity.py). While set, the message is not sent again.
    ambiguous_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    send_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The task's payload while the message is scheduled (too far ahead for an SQS delay).
    scheduled_payload = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # mail.metrics: the send-latency window is a range of sent_at.
            models.Index(fields=["sent_at"], name="message_sent_at"),
            # The list (mail/search.py), newest first by (created_at, id), its cursor: each filter
            # an index that leads with the team, so no filter reads the table.
            models.Index(fields=["team", "created_at", "id"], name="message_team_created"),
            models.Index(fields=["team", "status", "created_at", "id"], name="message_team_status"),
            models.Index(fields=["team", "provider", "created_at", "id"], name="message_team_provider"),
            models.Index(fields=["team", "sent_at"], name="message_team_sent"),
            # And GIN indexes of recipient_addresses, tags and metadata, made by migration 0008 on
            # PostgreSQL only (SQLite, the local run's default, has no GIN).
        ]

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
        CANCELED = "canceled"  # by the client, or an operator in the admin
        # A claim taken over from a worker that died mid-attempt: the provider may have the mail.
        AMBIGUOUS = "ambiguous"
        # An ambiguous attempt that no provider reported within the grace period: sent again.
        RESENT = "resent"
        SENT = "sent"
        # Reported by a provider's webhook after it accepted the mail: the vocabulary of
        # providers.events.EventType, whatever the provider called them.
        PROCESSED = "processed"
        DELIVERED = "delivered"
        DEFERRED = "deferred"
        BOUNCED = "bounced"
        DROPPED = "dropped"
        COMPLAINED = "complained"
        UNSUBSCRIBED = "unsubscribed"
        OPENED = "opened"
        CLICKED = "clicked"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=32, choices=Type.choices)
    provider = models.CharField(max_length=32, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.TextField(blank=True)
    # A provider's bounce that is a hard one (providers.events.DeliveryEvent.permanent): kept so an
    # event that came before our `sent` write can still suppress its recipient once it is made.
    permanent = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    # Provider events only: the provider's id of the event (providers resend events, and a
    # resent one must not be recorded twice), the recipient it concerns and when it happened.
    provider_event_id = models.CharField(max_length=255, blank=True)
    recipient = models.CharField(max_length=MAX_ADDRESS_LENGTH, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        # mail.metrics counts events by type and provider at every scrape: an index-only scan.
        indexes = [
            models.Index(fields=["type", "provider"], name="event_type_provider"),
            # mail.overview counts the last day's events of a type by hour: a range of this index.
            models.Index(fields=["type", "created_at"], name="event_type_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "provider", "provider_event_id"],
                condition=~models.Q(provider_event_id=""),
                name="one_row_per_provider_event",
            )
        ]

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

    name = models.CharField(max_length=32, unique=True, choices=provider_choices)
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


class Suppression(models.Model):
    """An address that hard-bounced or complained, or that the team added itself: new mail to it
    from the team's keys is refused at the API unless the client overrides it (mail/suppressions.py).
    Per team: a bounce of one team's message suppresses the address for that team."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce"
        COMPLAINT = "complaint"
        MANUAL = "manual"  # added through the API

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="suppressions", db_index=False)
    address = models.CharField(max_length=MAX_ADDRESS_LENGTH, help_text="Lower-case.")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    provider = models.CharField(max_length=32, blank=True)
    # The message whose event caused it (kept when the message is gone).
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="suppressions")
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["team", "address"], name="one_suppression_per_team_address")]
        # The list (mail/search.py): newest first by (created_at, id), by reason or not.
        indexes = [
            models.Index(fields=["team", "created_at", "id"], name="suppression_team_created"),
            models.Index(fields=["team", "reason", "created_at", "id"], name="suppression_team_reason"),
        ]

    def __str__(self):
        return f"{self.address} ({self.reason})"


class WebhookToken(models.Model):
    """A Mailgun webhook token already used: a second request with it is a replay. Needed only
    while its timestamp is fresh; older ones are refused as stale anyway and are deleted."""

    token = models.CharField(max_length=255, unique=True)
    signed_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return self.token


class Erasure(models.Model):
    """A team's request to erase one person's address and the mail sent to it (mail/erasure.py).
    The address is kept only until the job is done; its SHA-256 stays, so an auditor can check a
    request was carried out without the row naming the person."""

    class Status(models.TextChoices):
        PENDING = "pending"  # some of the mail is still being worked through or is on its way
        DONE = "done"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="erasures")
    address = models.CharField(max_length=MAX_ADDRESS_LENGTH, blank=True, help_text="Lower-case; blank once done.")
    address_sha256 = models.CharField(max_length=64)
    erase_suppression = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    messages_erased = models.PositiveIntegerField(default=0)
    suppression_erased = models.BooleanField(default=False)
    requested_by = models.CharField(max_length=16, blank=True, help_text="The API key's prefix.")
    requested_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self):
        return f"erasure {self.id} ({self.status})"
