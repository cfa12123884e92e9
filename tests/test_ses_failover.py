"""SES as the third provider, through real processes: the API and a worker, the embedded AWS
server's SES v2 (moto) and, for SES's failures, the provider simulator speaking SES's errors.
SendGrid and Mailgun down: SES sends it. SES throttling: retried on SES with its waits.
MessageRejected: the next provider at once. Sending paused: SES's circuit opens."""

import os

import boto3
import pytest

from .stack import mail_body
from .support import SIMULATOR_URL, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SENDER = "shop@ses-failover.example"
BREAKER = {"REDIS_URL": "redis://127.0.0.1:6379/13", "BREAKER_FAILURE_RUN": "3", "BREAKER_COOLDOWN_SECONDS": "60"}


def event_types(message: dict) -> list[str]:
    return [event["type"] for event in message["events"]]


@pytest.fixture(scope="module")
def verified_sender():
    """SES sends only from a verified identity, in moto as in AWS."""
    ses = boto3.client(
        "sesv2",
        region_name="us-east-1",
        endpoint_url=os.environ["SES_ENDPOINT_URL"],
        aws_access_key_id="t",
        aws_secret_access_key="t",
    )
    ses.create_email_identity(EmailIdentity=SENDER)
    return SENDER


def test_sendgrid_and_mailgun_down_ses_sends_it(make_stack, simulator, verified_sender):
    stack = make_stack(MAIL_PROVIDERS="sendgrid,mailgun,ses")
    stack.start_worker()
    simulator.behave("sendgrid", status=503)
    simulator.behave("mailgun", status=503)

    sent = stack.wait_for_status(stack.post(mail_body("third time", **{"from": verified_sender})), "sent", timeout=90)
    assert sent["provider"] == "ses" and sent["provider_message_id"]
    types = event_types(sent)
    assert types.count("failover") == 2 and types[-1] == "sent", sent["events"]
    assert len(simulator.requests("sendgrid")) == 4 and len(simulator.requests("mailgun")) == 4  # 1 + 3 retries each


def test_ses_throttling_is_retried_with_its_waits(make_stack, simulator):
    stack = make_stack(MAIL_PROVIDERS="ses,mailgun", SES_ENDPOINT_URL=SIMULATOR_URL)
    stack.start_worker()
    simulator.behave("ses", status=429, error_code="TooManyRequestsException", times=2)

    sent = stack.wait_for_status(stack.post(mail_body("throttled")), "sent", timeout=60)
    assert sent["provider"] == "ses"
    assert event_types(sent) == ["queued", "retry_scheduled", "retry_scheduled", "sent"], sent["events"]
    assert "TooManyRequestsException" in sent["events"][1]["detail"]
    first, second, third = (r["received_at"] for r in simulator.requests("ses"))
    assert second - first >= 0.5 and third - second >= 1  # retry waits of 0.5-1 s, then 1-2 s
    assert simulator.requests("mailgun") == []


def test_message_rejected_goes_to_the_next_provider_at_once(make_stack, simulator, verified_sender):
    stack = make_stack(MAIL_PROVIDERS="ses,mailgun")  # SES: the embedded AWS server
    stack.start_worker()

    from_ses = stack.wait_for_status(stack.post(mail_body("verified", **{"from": verified_sender})), "sent")
    assert from_ses["provider"] == "ses"
    rejected = stack.wait_for_status(stack.post(mail_body("unverified", **{"from": "nobody@unverified.example"})), "sent")
    assert rejected["provider"] == "mailgun"
    assert event_types(rejected) == ["queued", "failover", "sent"], rejected["events"]
    assert "MessageRejected" in rejected["events"][1]["detail"]


def test_sending_paused_opens_the_ses_circuit(make_stack, simulator):
    stack = make_stack(MAIL_PROVIDERS="ses,mailgun", SES_ENDPOINT_URL=SIMULATOR_URL, **BREAKER)
    stack.start_worker()
    simulator.behave("ses", status=400, error_code="SendingPausedException")

    paused = stack.wait_for_status(stack.post(mail_body("paused")), "sent")
    assert paused["provider"] == "mailgun" and event_types(paused) == ["queued", "failover", "sent"]
    # The next message does not ask SES at all: its circuit is open.
    after = stack.wait_for_status(stack.post(mail_body("after")), "sent")
    assert after["provider"] == "mailgun" and event_types(after) == ["queued", "skipped", "sent"], after["events"]
    assert after["events"][1]["detail"].startswith("skipped ses: circuit open")
    wait_until(lambda: len(simulator.requests("ses")) == 1, timeout=5, what="one request to SES only")
