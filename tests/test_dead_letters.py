"""Dead letters end to end: a task the redrive policy moved to the DLQ becomes a DeadLetter row,
and an operator's requeue in the admin delivers the message once the providers are back."""

import base64
import json
import signal
import sys
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.utils import timezone

from mail.management.commands.serve import processor_argv
from mail.models import DeadLetter, Message

from .stack import Stack, accepted_per_message, mail_body
from .support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DEAD_FAST = {"SQS_VISIBILITY_TIMEOUT": "5", "PROVIDER_READ_TIMEOUT": "2", "DELIVERY_LEASE_SECONDS": "4"}


def fail_everywhere(stack: Stack, simulator) -> str:
    simulator.behave("sendgrid", status=400)
    simulator.behave("mailgun", status=400)
    message_id = stack.post(mail_body("doomed"))
    stack.wait_for_status(message_id, "failed")
    wait_until(lambda: stack.dead_letter_task_ids() == [message_id], timeout=60, what="the task in the DLQ")
    return message_id


def test_a_failed_message_becomes_a_dead_letter_and_a_requeue_delivers_it_once(make_stack, simulator):
    stack = make_stack(**DEAD_FAST)
    stack.start_worker()
    message_id = fail_everywhere(stack, simulator)

    assert "1 dead letter(s) recorded" in stack.drain_dead_letters()
    assert stack.counts(stack.dlq_url) == {"Messages": 0, "MessagesNotVisible": 0, "MessagesDelayed": 0}
    dead_letter = DeadLetter.objects.get()
    assert str(dead_letter.message_id) == message_id
    assert "HTTP 400" in dead_letter.reason and "mailgun" in dead_letter.reason
    assert dead_letter.receive_count >= 3
    assert dead_letter.task_name == "mail.deliver" and dead_letter.task_args[0] == message_id
    assert dead_letter.task_args[1]["subject"] == "doomed"
    assert "dead_lettered" in [e["type"] for e in stack.message(message_id)["events"]]

    # The operator sees it in the admin, the providers are healthy again, and requeues it twice
    # by mistake (the second click lands before the worker has even sent it).
    get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    operator = stack.admin_session("ops", "pw")
    page = operator.get(f"{stack.api_url}/admin/mail/deadletter/{dead_letter.pk}/change/", timeout=10).text
    assert "HTTP 400" in page and "doomed" in page
    simulator.reset()
    first = stack.admin_action(operator, "mail/deadletter", "requeue", [dead_letter.pk])
    second = stack.admin_action(operator, "mail/deadletter", "requeue", [dead_letter.pk])
    assert "Requeued 1 message(s)." in first
    assert "Requeued 0 message(s)." in second and "1 skipped" in second

    message = stack.wait_for_status(message_id, "sent")
    wait_until(stack.queue_is_empty, what="every task acked")
    assert accepted_per_message(simulator) == {message_id: 1}
    assert [e["type"] for e in message["events"]][-2:] == ["requeued", "sent"]
    assert "by ops" in message["events"][-2]["detail"]
    dead_letter.refresh_from_db()
    assert dead_letter.status == "requeued" and dead_letter.handled_by == "ops"
    assert LogEntry.objects.filter(object_id=str(dead_letter.pk), change_message="Requeued its message").count() == 1


def test_garbage_in_the_dlq_becomes_dead_letters_too(make_stack, simulator):
    stack = make_stack()
    not_a_task = base64.b64encode(json.dumps({"body": "%%%", "headers": {"task": "x"}}).encode()).decode()
    for body in ("definitely not base64 !", not_a_task):
        stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=body)

    assert "2 dead letter(s) recorded" in stack.drain_dead_letters()
    rows = {row.raw_body: row for row in DeadLetter.objects.all()}
    assert set(rows) == {"definitely not base64 !", not_a_task}
    assert all(row.message is None and "not a readable Celery task" in row.reason for row in rows.values())


def test_a_drainer_killed_mid_batch_loses_and_duplicates_nothing(make_stack, simulator):
    stack = make_stack(SQS_DLQ_DRAIN_VISIBILITY_TIMEOUT="2")
    bodies = [f"poison {i}" for i in range(40)]
    for start in range(0, 40, 10):
        stack.sqs.send_message_batch(
            QueueUrl=stack.dlq_url, Entries=[{"Id": str(i), "MessageBody": bodies[start + i]} for i in range(10)]
        )
    drainer = stack.start_drainer()
    wait_until(lambda: DeadLetter.objects.exists(), what="the drainer to start recording")
    drainer.stop(signal.SIGKILL)

    # What it had received but not deleted reappears after the visibility timeout; drain again.
    def everything_recorded():
        stack.drain_dead_letters()
        return DeadLetter.objects.count() >= 40 and not any(stack.counts(stack.dlq_url).values())

    wait_until(everything_recorded, timeout=60, interval=1, what="every poison message recorded")
    assert sorted(DeadLetter.objects.values_list("raw_body", flat=True)) == sorted(bodies)  # each once


@pytest.mark.parametrize("host", ["jobs command", "callbacks worker"])
def test_the_jobs_drain_the_dlq_and_release_scheduled_mail(make_stack, host):
    """Both jobs in one process: `manage.py jobs drain_dlq housekeeping`, or the callbacks' worker
    as `serve` starts it, the jobs in greenlets beside its callbacks (WORKER_JOBS)."""
    stack = make_stack()
    held = stack.post(mail_body("later", send_at=(timezone.now() + timedelta(hours=2)).isoformat()))
    Message.objects.filter(pk=held).update(send_at=timezone.now() + timedelta(minutes=1))  # now within SQS's delay
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody="not a task at all")

    if host == "jobs command":
        stack.start_command([sys.executable, "manage.py", "jobs", "drain_dlq", "housekeeping"], "jobs", wait_for=None)
    else:
        callbacks = {"WORKER_CONSUMES": "callbacks", "WORKER_JOBS": "drain_dlq,housekeeping"}
        stack.start_command(processor_argv(), "callbacks", env={**stack.env, **callbacks})
    wait_until(
        lambda: DeadLetter.objects.filter(raw_body="not a task at all").exists(), what="the drainer to record the DLQ message"
    )
    message = wait_until(lambda: (m := stack.message(held))["events"][-1]["type"] == "released" and m, what="the release")
    assert message["status"] == "queued" and [e["type"] for e in message["events"]] == ["scheduled", "released"]
