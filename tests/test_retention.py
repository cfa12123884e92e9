"""Retention: bodies and message rows are kept as long as the settings say, then forgotten a
bounded batch at a time by the housekeeping command, never a message still on its way."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from mail.models import DeadLetter, Message, MessageEvent, Suppression

pytestmark = pytest.mark.django_db


def housekeeping() -> str:
    out = StringIO()
    call_command("housekeeping", "--once", stdout=out)
    return out.getvalue()


def message(api_key, days_old: int, status=Message.Status.SENT) -> Message:
    created = timezone.now() - timedelta(days=days_old)
    row = Message.objects.create(
        api_key=api_key[0],
        team_id=api_key[0].profile.team_id,
        status=status,
        from_email="shop@example.com",
        recipients="ann@example.com",
        recipient_count=1,
        subject="Your order",
        created_at=created,
    )
    MessageEvent.objects.create(message=row, type=MessageEvent.Type.QUEUED, created_at=created)
    return row


def dead_letter(row: Message, days_old: int) -> DeadLetter:
    return DeadLetter.objects.create(
        sqs_message_id=f"sqs-{row.pk}",
        message=row,
        task_args=[{"message_id": str(row.pk), "payload": {"text": "the mail itself"}}],
        raw_body='{"the": "mail itself"}',
        first_seen_at=timezone.now() - timedelta(days=days_old),
    )


@override_settings(BODY_RETENTION_DAYS=30, MESSAGE_RETENTION_DAYS=90)
def test_done_messages_past_their_retention_go_with_their_events_and_nothing_else_does(api_key):
    old_sent = message(api_key, 91)
    old_failed = message(api_key, 120, Message.Status.FAILED)
    letter = dead_letter(old_failed, 100)
    Suppression.objects.create(team=old_sent.team, address="ann@example.com", reason="hard_bounce", message=old_sent)
    recent = message(api_key, 89)
    # Old, but still on its way: its row is what stops a second send.
    stuck = message(api_key, 200, Message.Status.SENDING)
    scheduled = message(api_key, 95, Message.Status.SCHEDULED)

    assert "2 message(s) past MESSAGE_RETENTION_DAYS deleted" in housekeeping()

    assert set(Message.objects.values_list("pk", flat=True)) == {recent.pk, stuck.pk, scheduled.pk}
    assert not MessageEvent.objects.filter(message_id__in=[old_sent.pk, old_failed.pk]).exists()
    assert not DeadLetter.objects.filter(pk=letter.pk).exists()
    # The suppression outlives the message that caused it.
    assert Suppression.objects.get(address="ann@example.com").message is None


@override_settings(BODY_RETENTION_DAYS=30, MESSAGE_RETENTION_DAYS=90)
def test_a_dead_letter_forgets_the_mail_after_the_body_retention_but_keeps_its_record(api_key):
    row = message(api_key, 40, Message.Status.FAILED)
    old = dead_letter(row, 31)
    fresh = dead_letter(message(api_key, 5, Message.Status.FAILED), 5)

    assert "1 dead letter body(ies) past BODY_RETENTION_DAYS forgotten" in housekeeping()

    old.refresh_from_db()
    fresh.refresh_from_db()
    assert (old.task_args, old.raw_body) == (None, "")
    assert old.message == row and old.status == DeadLetter.Status.PENDING
    assert fresh.task_args and fresh.raw_body


@override_settings(MESSAGE_RETENTION_DAYS=90, RETENTION_BATCH_SIZE=3)
def test_a_backlog_goes_a_bounded_batch_per_run_oldest_first(api_key):
    rows = [message(api_key, 100 + age) for age in range(7)]

    assert "3 message(s)" in housekeeping()
    oldest_three = {row.pk for row in rows[-3:]}
    assert not Message.objects.filter(pk__in=oldest_three).exists()
    assert "3 message(s)" in housekeeping()
    assert "1 message(s)" in housekeeping()
    assert not Message.objects.exists()
