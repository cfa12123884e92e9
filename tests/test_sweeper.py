"""mail/sweeper.py through the housekeeping command's jobs: stale `queued`/`sending` rows are
settled by the documented rule, against the real database and the embedded SQS server."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from mail.management.commands.housekeeping import run_once
from mail.models import DeadLetter, Message, MessageEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_queue(settings, sqs, provisioned_queues):
    """A mail queue of the test's own: "completely empty" must not depend on what other tests left
    in flight or delayed in the shared one."""
    name = f"sweep-{uuid.uuid4().hex[:10]}"
    settings.SQS_QUEUE_NAME = name
    return sqs.create_queue(QueueName=name)["QueueUrl"]


def stuck(api_key, status: str, age_seconds: float | None = None) -> Message:
    age = timedelta(seconds=age_seconds if age_seconds is not None else 3 * 3600)
    then = timezone.now() - age
    return Message.objects.create(
        api_key=api_key[0],
        team=api_key[0].profile.team,
        status=status,
        from_email="shop@example.com",
        recipients="ann@example.com",
        recipient_count=1,
        subject="Receipt",
        lease_expires_at=then if status == "sending" else None,
        created_at=then,
        updated_at=then,
    )


def swept(message: Message) -> tuple[str, str]:
    message.refresh_from_db()
    last = message.events.order_by("-created_at").first()
    return message.status, last.detail if last else ""


def test_stale_rows_are_settled_by_the_rule_and_live_ones_left_alone(api_key, own_queue):
    reported = stuck(api_key, "sending")
    MessageEvent.objects.create(message=reported, type="processed", provider="mailgun", provider_event_id="e1")
    dead = stuck(api_key, "queued")
    DeadLetter.objects.create(sqs_message_id="dlq-1", message=dead, reason="poison")
    lost = stuck(api_key, "sending")
    recent = stuck(api_key, "queued", age_seconds=60)

    run_once()
    assert swept(reported)[0] == "sent" and "mailgun reported a `processed` event" in swept(reported)[1]
    assert Message.objects.get(pk=reported.pk).provider == "mailgun"
    assert swept(dead) == ("failed", swept(dead)[1]) and "dead-letter queue; requeue it" in swept(dead)[1]
    assert swept(lost)[0] == "failed" and "its task was lost" in swept(lost)[1]
    assert Message.objects.get(pk=recent.pk).status == "queued"
    assert not recent.events.exists()


def test_a_stale_row_whose_task_may_still_be_queued_is_left_alone(api_key, own_queue, sqs):
    waiting = stuck(api_key, "queued")
    sqs.send_message(QueueUrl=own_queue, MessageBody="a task of someone's")
    run_once()
    assert Message.objects.get(pk=waiting.pk).status == "queued"
    assert not waiting.events.exists()
