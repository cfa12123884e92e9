"""The delivery guarantees 3-7 of docs/architecture.md, each proven with real processes: the API and Celery workers as
processes, the real SQS-compatible server, the provider simulator over HTTP."""

import signal
import socket

import pytest
from rest_framework_api_key.models import APIKey

from mail.models import Message

from .stack import accepted_per_message, mail_body
from .support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def event_summary(message: dict) -> list[tuple[str, str]]:
    return [(event["type"], event["provider"]) for event in message["events"]]


def test_transient_failures_are_retried_on_the_same_provider_with_waits_in_sqs(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    simulator.behave("sendgrid", status=503, times=2)
    message_id = stack.post(mail_body())

    # While a retry waits, it is a delayed message in SQS, not a task held by the worker.
    wait_until(lambda: stack.counts()["MessagesDelayed"] == 1, what="a retry waiting as an SQS delay")
    message = stack.wait_for_status(message_id, "sent")

    assert event_summary(message) == [
        ("queued", ""),
        ("retry_scheduled", "sendgrid"),
        ("retry_scheduled", "sendgrid"),
        ("sent", "sendgrid"),
    ]
    retries = [e for e in message["events"] if e["type"] == "retry_scheduled"]
    assert [e["status_code"] for e in retries] == [503, 503]
    assert "retry 1 of 3" in retries[0]["detail"] and "retry 2 of 3" in retries[1]["detail"]
    assert all("(SQS delay)" in e["detail"] for e in retries)
    assert [r["status"] for r in simulator.requests("sendgrid")] == [503, 503, 202]
    assert simulator.requests("mailgun") == []
    assert message["attempts"] == 3 and message["provider"] == "sendgrid"
    wait_until(stack.queue_is_empty, what="every task acked")


def test_retry_after_is_honoured(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    simulator.behave("sendgrid", status=429, retry_after="6", times=1)
    message_id = stack.post(mail_body())
    message = stack.wait_for_status(message_id, "sent")

    first, second = simulator.requests("sendgrid")
    assert first["status"] == 429 and second["status"] == 202
    assert second["received_at"] - first["received_at"] >= 6  # not the 1 s backoff
    assert "in 6 s" in message["events"][1]["detail"]


@pytest.mark.parametrize("outage", ["503", "dropped connection", "timeout", "connection refused"])
def test_sendgrid_down_means_three_retries_then_mailgun(make_stack, simulator, outage):
    env = {}
    if outage == "503":
        simulator.behave("sendgrid", status=503)
    elif outage == "dropped connection":
        simulator.behave("sendgrid", drop=True)
    elif outage == "timeout":
        simulator.behave("sendgrid", latency_ms=4000)  # over PROVIDER_READ_TIMEOUT
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            env["SENDGRID_API_URL"] = f"http://127.0.0.1:{sock.getsockname()[1]}"
    stack = make_stack(**env)
    stack.start_worker()
    message_id = stack.post(mail_body())
    message = stack.wait_for_status(message_id, "sent", timeout=90)

    assert event_summary(message) == [
        ("queued", ""),
        ("retry_scheduled", "sendgrid"),
        ("retry_scheduled", "sendgrid"),
        ("retry_scheduled", "sendgrid"),
        ("failover", "sendgrid"),
        ("sent", "mailgun"),
    ]
    assert "3 retries exhausted; now mailgun" in message["events"][4]["detail"]
    assert message["provider"] == "mailgun" and message["provider_message_id"].endswith("@test.example.com")
    if outage != "connection refused":
        assert len(simulator.requests("sendgrid")) == 4
    assert accepted_per_message(simulator) == {message_id: 1}


def test_sendgrid_401_fails_over_at_once(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    simulator.behave("sendgrid", status=401)
    message = stack.wait_for_status(stack.post(mail_body()), "sent")
    assert event_summary(message) == [("queued", ""), ("failover", "sendgrid"), ("sent", "mailgun")]
    assert "provider: HTTP 401" in message["events"][1]["detail"]
    assert len(simulator.requests("sendgrid")) == 1


def test_a_message_both_providers_reject_fails_without_retries(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    simulator.behave("sendgrid", status=400)
    simulator.behave("mailgun", status=400)
    message = stack.wait_for_status(stack.post(mail_body()), "failed")
    assert event_summary(message) == [("queued", ""), ("failover", "sendgrid"), ("failed", "mailgun")]
    assert message["events"][2]["detail"].startswith("message: HTTP 400")
    assert "HTTP 400" in message["last_error"] and "mailgun" in message["last_error"]
    assert len(simulator.requests("sendgrid")) == len(simulator.requests("mailgun")) == 1


def test_both_down_fails_and_the_task_is_dead_lettered_without_calling_providers_again(make_stack, simulator):
    stack = make_stack(SQS_VISIBILITY_TIMEOUT="5", PROVIDER_READ_TIMEOUT="2", DELIVERY_LEASE_SECONDS="4")
    worker = stack.start_worker()
    simulator.behave("sendgrid", status=503)
    simulator.behave("mailgun", status=503)
    message_id = stack.post(mail_body())
    message = stack.wait_for_status(message_id, "failed", timeout=90)
    assert [e["type"] for e in message["events"]] == ["queued"] + ["retry_scheduled"] * 3 + ["failover"] + [
        "retry_scheduled"
    ] * 3 + ["failed"]

    # The redrive policy moves the task to the DLQ after 3 receives; redeliveries call no one.
    wait_until(lambda: stack.dead_letter_task_ids() == [message_id], timeout=60, what="the task in the dead-letter queue")
    assert len(simulator.requests("sendgrid")) == len(simulator.requests("mailgun")) == 4
    assert stack.message(message_id)["events"] == message["events"]
    assert worker.output().count("has failed") >= 2  # redeliveries seen, refused again


def test_a_task_that_crashes_the_worker_code_is_redelivered_then_dead_lettered(make_stack, simulator):
    stack = make_stack(SQS_VISIBILITY_TIMEOUT="5", PROVIDER_READ_TIMEOUT="2", DELIVERY_LEASE_SECONDS="4")
    stack.start_worker()
    # A message whose only task our code cannot read (a bug, a bad deploy): it must not vanish.
    poisoned = Message.objects.create(
        api_key=APIKey.objects.get(name="stack"),
        team=APIKey.objects.get(name="stack").profile.team,
        from_email="a@example.com",
        recipients="b@example.com",
        recipient_count=1,
        subject="poison",
    )
    stack.publish_copy_raw(str(poisoned.pk), {"not": "a payload"})

    wait_until(lambda: stack.dead_letter_task_ids() == [str(poisoned.pk)], timeout=60, what="the poison task in the DLQ")
    errors = [e for e in stack.message(str(poisoned.pk))["events"] if e["type"] == "error"]
    assert len(errors) == 3  # one per receive, then SQS moved it
    assert "internal error: KeyError('from')" in errors[0]["detail"]
    assert simulator.requests() == []


def test_a_worker_killed_mid_send_loses_nothing_and_sends_once(make_stack, simulator):
    # Long enough that the kill surely lands while the simulator holds the request.
    stack = make_stack(SQS_VISIBILITY_TIMEOUT="15", PROVIDER_READ_TIMEOUT="10", DELIVERY_LEASE_SECONDS="12")
    doomed = stack.start_worker()
    simulator.behave("sendgrid", latency_ms=11_000)
    message_id = stack.post(mail_body())
    wait_until(lambda: simulator.requests("sendgrid"), what="the send to reach the simulator")

    doomed.stop(signal.SIGKILL)
    simulator.behave("sendgrid")  # healthy again for the next worker
    assert Message.objects.get(pk=message_id).status == "sending"
    stack.start_worker()

    message = stack.wait_for_status(message_id, "sent", timeout=60)
    held, delivered = simulator.requests("sendgrid")
    assert held["state"] == "abandoned" and not held["accepted"]
    assert delivered["accepted"]
    assert accepted_per_message(simulator) == {message_id: 1}
    assert message["attempts"] == 2  # the dead worker's claim, then the takeover
    # The takeover could not know the provider had not taken it: recorded ambiguous, asked, and
    # sent again only once the grace period (10 s from the attempt, past by then) had run out.
    types = [event["type"] for event in message["events"]]
    assert types.index("ambiguous") < types.index("resent") < types.index("sent")


def test_the_same_task_delivered_twice_at_once_calls_the_provider_once(make_stack, simulator):
    stack = make_stack(SQS_VISIBILITY_TIMEOUT="10", PROVIDER_READ_TIMEOUT="6", DELIVERY_LEASE_SECONDS="8")
    workers = [stack.start_worker(), stack.start_worker()]
    simulator.behave("sendgrid", latency_ms=4000)
    message_id = stack.post(mail_body())
    # At-least-once delivery: the same task arrives a second time while the first is being sent.
    wait_until(lambda: simulator.requests("sendgrid"), what="the first copy to be sending")
    stack.publish_copy(message_id, mail_body())
    wait_until(
        lambda: any("being sent by another worker" in worker.output() for worker in workers),
        what="the second copy to find the message claimed",
    )
    stack.wait_for_status(message_id, "sent")
    wait_until(stack.queue_is_empty, timeout=60, what="both copies acked")
    assert len(simulator.requests("sendgrid")) == 1
    assert accepted_per_message(simulator) == {message_id: 1}


def test_a_late_task_of_an_earlier_step_does_nothing(make_stack, simulator):
    # Mailgun slow enough for the copy to arrive while it sends, and well within the read timeout:
    # at FAST's 3 s a loaded machine timed the send out, and a timed-out send is retried.
    stack = make_stack(SQS_VISIBILITY_TIMEOUT="10", PROVIDER_READ_TIMEOUT="6", DELIVERY_LEASE_SECONDS="8")
    worker = stack.start_worker()
    simulator.behave("sendgrid", status=401)
    simulator.behave("mailgun", latency_ms=3000)
    message_id = stack.post(mail_body())
    wait_until(lambda: simulator.requests("mailgun"), what="the failover to Mailgun to be sending")
    # A duplicate of the first task (SendGrid, step 0) arrives after the delivery moved on.
    stack.publish_copy(message_id, mail_body())
    wait_until(lambda: "dropping a late task" in worker.output(), what="the late task to be dropped")
    stack.wait_for_status(message_id, "sent")
    wait_until(stack.queue_is_empty, what="every task acked")
    assert len(simulator.requests("sendgrid")) == 1
    assert accepted_per_message(simulator) == {message_id: 1}


def test_sigterm_lets_the_running_send_finish_and_leaves_the_rest_in_the_queue(make_stack, simulator):
    stack = make_stack()
    worker = stack.start_worker(WORKER_CONCURRENCY="1")
    simulator.behave("sendgrid", latency_ms=2000)
    running = stack.post(mail_body("running"))
    wait_until(lambda: simulator.requests("sendgrid"), what="the send to start")
    waiting = stack.post(mail_body("waiting"))

    assert worker.stop(signal.SIGTERM, timeout=30) == 0
    assert Message.objects.get(pk=running).status == "sent"
    assert simulator.requests("sendgrid")[0]["accepted"]
    # The other message was not taken: it is visible in the queue for the next worker now, not
    # hidden in a stopped worker until its visibility timeout.
    assert Message.objects.get(pk=waiting).status == "queued"
    assert stack.counts() == {"Messages": 1, "MessagesNotVisible": 0, "MessagesDelayed": 0}
    simulator.behave("sendgrid")
    stack.start_worker()
    stack.wait_for_status(waiting, "sent")


def test_200_messages_through_two_workers_with_30_percent_failures(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    stack.start_worker()
    simulator.behave("sendgrid", status=500, failure_rate=0.3)
    simulator.behave("mailgun", status=500, failure_rate=0.3)
    ids = [stack.post(mail_body(f"load {i}")) for i in range(200)]

    finished = ("sent", "failed")
    wait_until(
        lambda: Message.objects.filter(pk__in=ids, status__in=finished).count() == 200, timeout=240, what="all 200 finished"
    )

    accepted = accepted_per_message(simulator)
    for message in Message.objects.filter(pk__in=ids):
        if message.status == "sent":
            assert accepted[str(message.id)] == 1, message.id  # never twice
        else:
            assert message.last_error and accepted[str(message.id)] == 0, message.id
    assert set(accepted) <= set(ids)
    assert sum(accepted.values()) == Message.objects.filter(pk__in=ids, status="sent").count()
