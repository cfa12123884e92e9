"""Health-aware failover through real processes: workers, the API, the SQS server, Redis and the
provider simulator. A provider whose circuit is open is skipped at once; after the cool-down a
probe finds it well and traffic returns."""

import pytest
from django.contrib.auth import get_user_model

from mail.models import Message

from .stack import mail_body
from .support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Three failures in a row open a circuit; three seconds later a probe may go. Each stack's queue
# name is its own, and so are its circuits in Redis.
BREAKER = {
    "REDIS_URL": "redis://127.0.0.1:6379/13",
    "BREAKER_FAILURE_RUN": "3",
    "BREAKER_COOLDOWN_SECONDS": "3",
}


def event_types(message: dict) -> list[str]:
    return [event["type"] for event in message["events"]]


def sent_by(stack, subject: str) -> dict:
    return stack.wait_for_status(stack.post(mail_body(subject)), "sent")


def test_a_failing_provider_is_skipped_then_traffic_returns_when_it_recovers(make_stack, simulator):
    # A cool-down longer than the last retry's wait (2-4 s) and the five messages sent while open.
    stack = make_stack(**{**BREAKER, "BREAKER_COOLDOWN_SECONDS": "10"})
    stack.start_worker()
    get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    simulator.behave("sendgrid", status=503)

    # The first message pays for finding out: three failures open SendGrid's circuit, and its
    # next retry skips to Mailgun.
    first = sent_by(stack, "finds out")
    assert first["provider"] == "mailgun"
    assert event_types(first) == ["queued", "retry_scheduled", "retry_scheduled", "retry_scheduled", "skipped", "sent"], first[
        "events"
    ]
    sendgrid_calls = len(simulator.requests("sendgrid"))
    assert sendgrid_calls == 3

    # Once it is open, new messages go straight to Mailgun without touching SendGrid.
    for n in range(5):
        message = sent_by(stack, f"while open {n}")
        assert message["provider"] == "mailgun"
        assert event_types(message) == ["queued", "skipped", "sent"]
        assert message["events"][1]["detail"].startswith("skipped sendgrid: circuit open (3 failures in a row) until ")
    assert len(simulator.requests("sendgrid")) == sendgrid_calls

    # The operator sees it in the admin, beside the provider switches.
    page = stack.admin_session("ops", "pw").get(f"{stack.api_url}/admin/mail/providersetting/", timeout=10).text
    assert 'class="circuit-open"' in page and "3 failures in a row" in page

    # SendGrid recovers: after the cool-down a probe goes to it, succeeds, and traffic returns.
    simulator.behave("sendgrid")
    wait_until(lambda: sent_by(stack, "probe")["provider"] == "sendgrid", timeout=30, what="a message sent by SendGrid again")
    assert [sent_by(stack, f"after {n}")["provider"] for n in range(3)] == ["sendgrid"] * 3
    page = stack.admin_session("ops", "pw").get(f"{stack.api_url}/admin/mail/providersetting/", timeout=10).text
    assert 'class="circuit-closed"' in page and "probe succeeded" in page


def test_a_429_with_retry_after_opens_the_circuit_for_that_long(make_stack, simulator):
    stack = make_stack(**BREAKER)
    stack.start_worker()
    simulator.behave("sendgrid", status=429, retry_after="6", times=1)

    throttled = stack.post(mail_body("throttled"))
    wait_until(lambda: "retry_scheduled" in event_types(stack.message(throttled)), what="SendGrid's 429")
    meanwhile = stack.wait_for_status(stack.post(mail_body("meanwhile")), "sent")

    assert meanwhile["provider"] == "mailgun"
    assert "circuit open (429: retry after 6 s)" in meanwhile["events"][1]["detail"]
    # The throttled message's retry waited the 6 s and was SendGrid's probe: closed again.
    assert stack.wait_for_status(throttled, "sent")["provider"] == "sendgrid"
    first, probe = (r["received_at"] for r in simulator.requests("sendgrid"))
    assert probe - first >= 6
    assert sent_by(stack, "after")["provider"] == "sendgrid"


def test_slow_answers_open_the_circuit(make_stack, simulator):
    stack = make_stack(
        **{**BREAKER, "BREAKER_SLOW_CALL_SECONDS": "1", "BREAKER_MIN_CALLS": "3", "BREAKER_COOLDOWN_SECONDS": "60"}
    )
    stack.start_worker()
    simulator.behave("sendgrid", latency_ms=1500)

    # Slow but successful: each is sent by SendGrid, and the third makes the window's verdict.
    assert [sent_by(stack, f"slow {n}")["provider"] for n in range(3)] == ["sendgrid"] * 3

    skipped = sent_by(stack, "after three slow ones")
    assert skipped["provider"] == "mailgun"
    assert "3 of 3 calls took over 1 s" in skipped["events"][1]["detail"]


@pytest.mark.parametrize("shared", [True, False], ids=["with Redis", "without Redis"])
def test_two_workers_share_one_view_of_a_provider_through_redis(make_stack, simulator, shared):
    stack = make_stack(**{**BREAKER, "BREAKER_COOLDOWN_SECONDS": "120", "REDIS_URL": BREAKER["REDIS_URL"] if shared else ""})
    first_worker = stack.start_worker()
    simulator.behave("sendgrid", status=503)
    assert sent_by(stack, "opens it")["provider"] == "mailgun"  # the first worker saw SendGrid fail
    first_worker.stop()

    # SendGrid is well again, but the circuit the first worker opened holds for two minutes.
    simulator.behave("sendgrid")
    stack.start_worker()
    message = sent_by(stack, "second worker")

    if shared:
        assert message["provider"] == "mailgun"
        assert event_types(message) == ["queued", "skipped", "sent"]
    else:
        assert message["provider"] == "sendgrid"  # the new worker knew nothing of it


def test_with_every_circuit_open_messages_wait_in_sqs_then_go(make_stack, simulator):
    stack = make_stack(**{**BREAKER, "BREAKER_COOLDOWN_SECONDS": "8"})
    stack.start_worker()
    simulator.behave("sendgrid", status=503)
    simulator.behave("mailgun", status=503)

    first = stack.post(mail_body("both down"))
    # SendGrid's three failures, then Mailgun's three (its own fresh retries): both circuits open.
    waiting = wait_until(
        lambda: (m := stack.message(first)) and "waiting" in event_types(m) and m,
        timeout=60,
        what="the message to wait for a circuit",
    )
    assert waiting["status"] == "queued"
    assert "the circuit of every provider left for it is open (mailgun)" in waiting["events"][-1]["detail"]
    wait_until(lambda: stack.counts()["MessagesDelayed"] == 1, what="the task to wait in SQS")  # not in a worker
    assert Message.objects.get(pk=first).status == "queued"

    simulator.behave("sendgrid")
    simulator.behave("mailgun")
    assert stack.wait_for_status(first, "sent", timeout=60)["provider"] == "mailgun"


def test_a_provider_skipped_for_its_circuit_gets_its_turn_before_the_message_fails(make_stack, simulator):
    stack = make_stack(**{**BREAKER, "BREAKER_COOLDOWN_SECONDS": "8"})
    stack.start_worker()
    simulator.behave("sendgrid", status=503)
    assert sent_by(stack, "opens it")["provider"] == "mailgun"

    # SendGrid's circuit is open; Mailgun refuses the next message outright.
    simulator.behave("mailgun", status=400)
    message_id = stack.post(mail_body("refused by mailgun"))
    handed_back = wait_until(
        lambda: (m := stack.message(message_id)) and "failover" in event_types(m) and m, what="Mailgun's refusal"
    )
    # Not failed: SendGrid never saw it. Queued, or already sending again should SendGrid's
    # cooldown have ended before this read (the next attempt may start at once).
    assert handed_back["status"] in ("queued", "sending")
    assert "now sendgrid, skipped earlier while its circuit was open" in handed_back["events"][-1]["detail"]

    simulator.behave("sendgrid")
    message = stack.wait_for_status(message_id, "sent", timeout=60)
    assert message["provider"] == "sendgrid"
    assert event_types(message)[:3] == ["queued", "skipped", "failover"]
