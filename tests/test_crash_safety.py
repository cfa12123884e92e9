"""Crash safety beyond at-least-once (docs/architecture.md, "Ambiguous attempts"), with real
processes: the API and Celery workers, the SQS-compatible server, the provider simulator (its
log APIs and its signed webhooks). A worker killed after a provider took a mail and before it
wrote `sent` leaves an ambiguous attempt: it is resolved from the provider's events or its log,
and sent again only when neither says "accepted" within the grace period."""

import os
import signal
import time

import pytest

from mail.management.commands.serve import processor_argv
from mail.models import Message, MessageEvent

from .stack import accepted_per_message, mail_body
from .support import wait_until
from .webhook_signing import MailgunSigner, SendGridSigner

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def webhook_stack(make_stack, simulator, events: bool, **env):
    """A stack whose API verifies both providers' webhooks; with `events`, the simulator posts a
    signed `processed` (SendGrid) or `accepted` (Mailgun) event after each acceptance."""
    sendgrid, mailgun = SendGridSigner(), MailgunSigner()
    stack = make_stack(
        SENDGRID_WEBHOOK_PUBLIC_KEY=sendgrid.public_key_b64, MAILGUN_WEBHOOK_SIGNING_KEY=mailgun.signing_key, **env
    )
    if events:
        simulator.send_webhooks("sendgrid", f"{stack.api_url}/webhooks/sendgrid", private_key_pem=sendgrid.private_key_pem)
        simulator.send_webhooks("mailgun", f"{stack.api_url}/webhooks/mailgun", signing_key=mailgun.signing_key)
    return stack


def event_types(message_id) -> list[str]:
    return list(MessageEvent.objects.filter(message_id=message_id).values_list("type", flat=True))


def test_a_mail_accepted_before_its_worker_died_is_found_in_the_log_and_not_sent_again(make_stack, simulator):
    stack = webhook_stack(make_stack, simulator, events=False)
    doomed = stack.start_worker()
    # SendGrid takes the mail, then holds its answer: the worker is killed before it hears it.
    simulator.behave("sendgrid", answer_delay_ms=2500)
    message_id = stack.post(mail_body())
    wait_until(lambda: simulator.requests("sendgrid", accepted=True), what="SendGrid to accept the mail")
    doomed.stop(signal.SIGKILL)
    simulator.behave("sendgrid")
    assert Message.objects.get(pk=message_id).status == "sending"

    stack.start_worker()
    stack.wait_for_status(message_id, "sent", timeout=60)
    assert accepted_per_message(simulator) == {message_id: 1}
    types = event_types(message_id)
    assert "ambiguous" in types and "resent" not in types
    sent = MessageEvent.objects.get(message_id=message_id, type="sent")
    assert sent.provider == "sendgrid" and "found accepted in sendgrid's log" in sent.detail


def chaos(make_stack, simulator, events: bool, count: int = 150) -> dict:
    """`count` messages, both providers failing 30 % at random, the worker SIGKILLed twice while
    they flow and started again; returns what the providers accepted, per message."""
    # 30 % random failures open the circuits now and then (5 in a row, or half of a window): a
    # short cooldown keeps their waits from dominating the test; they are not what it measures.
    stack = webhook_stack(make_stack, simulator, events, WORKER_CONCURRENCY="16", BREAKER_COOLDOWN_SECONDS="2")
    simulator.log_lag(600_000)  # resolved by events alone (or not at all), so the test shows which
    for provider in ("sendgrid", "mailgun"):
        # The accepted ones answer late: a kill then lands between acceptance and our `sent` write.
        simulator.behave(provider, status=500, failure_rate=0.3, answer_delay_ms=300)
    worker = stack.start_worker()
    ids = [stack.post(mail_body(f"chaos {i}")) for i in range(count)]
    for threshold in (count // 5, count // 2):
        wait_until(lambda t=threshold: len(simulator.requests(accepted=True)) >= t, timeout=60, what=f"{threshold} accepted")
        worker.stop(signal.SIGKILL)
        worker = stack.start_worker()
    finished = ("sent", "failed")
    wait_until(
        lambda: Message.objects.filter(pk__in=ids, status__in=finished).count() == count,
        timeout=90,
        what=f"all {count} sent or failed (logs in {stack.directory})",
    )
    accepted = accepted_per_message(simulator)
    assert set(accepted) <= set(ids)
    ambiguous = set(
        MessageEvent.objects.filter(message_id__in=ids, type="ambiguous").values_list("message_id", flat=True).distinct()
    )
    assert ambiguous, "the kills left no ambiguous attempt: the test would prove nothing"
    duplicated = sum(1 for i in ids if accepted[i] > 1)
    print(f"\nchaos (events={events}): {count} messages, {len(ambiguous)} ambiguous, {duplicated} accepted twice")
    return {"ids": ids, "accepted": accepted, "ambiguous": {str(i) for i in ambiguous}}


def test_chaos_with_provider_events_loses_nothing_and_sends_nothing_twice(make_stack, simulator):
    run = chaos(make_stack, simulator, events=True)
    for message in Message.objects.filter(pk__in=run["ids"]):
        if message.status == "sent":
            assert run["accepted"][str(message.id)] == 1, message.id
        else:
            assert message.last_error and run["accepted"][str(message.id)] == 0, message.id
    # The kills' ambiguous attempts were resolved by the providers' events (a `resent` one is an
    # attempt the kill stopped before the provider took it: sent once, after the grace period).
    resolved = MessageEvent.objects.filter(message_id__in=run["ambiguous"], type="sent", detail__contains="event for it")
    assert resolved.exists()


def test_chaos_without_events_sends_twice_only_what_it_recorded_ambiguous(make_stack, simulator):
    run = chaos(make_stack, simulator, events=False)
    resent = {
        str(i) for i in MessageEvent.objects.filter(message_id__in=run["ids"], type="resent").values_list("message_id", flat=True)
    }
    for message in Message.objects.filter(pk__in=run["ids"]):
        times = run["accepted"][str(message.id)]
        if message.status == "failed":
            assert message.last_error, message.id
        else:
            assert times >= 1, message.id  # none lost
        if times > 1:
            assert str(message.id) in run["ambiguous"] & resent, message.id
            assert times == 2, message.id
    # Every ambiguous attempt waited out the grace period before it was sent again, and says so.
    assert run["ambiguous"] <= resent | {
        str(m) for m in Message.objects.filter(pk__in=run["ids"], status="failed").values_list("pk", flat=True)
    }
    some = sorted(resent)[0]
    types = event_types(some)
    assert types.index("ambiguous") < types.index("resent")
    assert "within 10 s" in MessageEvent.objects.filter(message_id=some, type="resent").first().detail


def test_a_stopped_worker_releases_what_it_received_and_did_not_start(make_stack, simulator):
    # A visibility timeout far longer than the wait allowed below: only a release explains a pick-up.
    stack = make_stack(SQS_VISIBILITY_TIMEOUT="120", DELIVERY_LEASE_SECONDS="10")
    simulator.behave("sendgrid", latency_ms=2000)  # within PROVIDER_READ_TIMEOUT (3 s)
    # One send at a time, four received: three wait in the worker, hidden from every other. (The
    # prefork pool reserves them in its parent; gevent's pool runs what it received before it stops.)
    holder = stack.start_command(
        [*processor_argv(pool="prefork"), "--prefetch-multiplier", "4"], "worker", env={**stack.env, "WORKER_CONCURRENCY": "1"}
    )
    ids = [stack.post(mail_body(f"prefetched {i}")) for i in range(4)]
    wait_until(
        lambda: stack.counts()["MessagesNotVisible"] == 4 and len(simulator.requests("sendgrid")) == 1,
        what="one message sending and three more received by the same worker",
    )
    stack.start_worker()  # idle: it can see nothing

    # SIGTERM to the worker's main process, as `docker stop` sends it: its pool finishes the send.
    stopped = time.monotonic()
    os.kill(holder.process.pid, signal.SIGTERM)
    simulator.behave("sendgrid")
    assert holder.process.wait(timeout=30) == 0
    wait_until(
        lambda: Message.objects.filter(pk__in=ids, status="sent").count() == 4,
        timeout=30,
        what="all four sent, three of them by the other worker",
    )
    picked_up_after = time.monotonic() - stopped
    print(f"\nreceived-but-not-started messages sent by another worker {picked_up_after:.1f} s after the SIGTERM")
    assert picked_up_after < 10  # the visibility timeout is 120 s
    assert "released the messages received and not started" in holder.output()
    assert accepted_per_message(simulator) == dict.fromkeys(ids, 1)
