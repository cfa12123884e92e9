"""End to end, with real processes: a message goes through the API, SQS and a worker to the
provider simulator; the provider's signed webhook (built from what the simulator received, as
the provider would echo it) is posted to the API over HTTP; GET shows the message delivered
with the event, and a hard bounce makes the API refuse the address from then on."""

import json

import pytest
import requests

from .stack import mail_body
from .webhook_signing import MailgunSigner, SendGridSigner, mailgun_event, sendgrid_event

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def sendgrid_webhook(stack, signer, request: dict, event: str, email: str, **extra) -> requests.Response:
    # SendGrid echoes the personalization's custom_args as top-level keys of each event.
    custom_args = request["json"]["personalizations"][0]["custom_args"]
    body = json.dumps([{**sendgrid_event("", event, email=email, **extra), **custom_args}]).encode()
    headers = {"Content-Type": "application/json", **signer.headers(body)}
    return requests.post(f"{stack.api_url}/webhooks/sendgrid", data=body, headers=headers, timeout=10)


def mailgun_webhook(stack, signer, request: dict, event: str, recipient: str, **extra) -> requests.Response:
    # Mailgun returns the v: variables of the message as the event's user-variables.
    variables = {name[2:]: values[0] for name, values in request["form"].items() if name.startswith("v:")}
    data = {**mailgun_event("", event, recipient=recipient, **extra), "user-variables": variables}
    return requests.post(
        f"{stack.api_url}/webhooks/mailgun", data=signer.body(data), headers={"Content-Type": "application/json"}, timeout=10
    )


@pytest.mark.parametrize("provider", ["sendgrid", "mailgun"])
def test_a_signed_webhook_marks_the_message_delivered_and_a_hard_bounce_suppresses(make_stack, simulator, provider):
    sendgrid_signer, mailgun_signer = SendGridSigner(), MailgunSigner()
    stack = make_stack(
        MAIL_PROVIDERS=provider,
        SENDGRID_WEBHOOK_PUBLIC_KEY=sendgrid_signer.public_key_b64,
        MAILGUN_WEBHOOK_SIGNING_KEY=mailgun_signer.signing_key,
    )
    stack.start_worker()
    message_id = stack.post(mail_body(to=["Ann <ann@example.com>", "gone@example.com"], metadata={"order": "42"}))
    stack.wait_for_status(message_id, "sent")
    (request,) = simulator.requests(provider, accepted=True)

    if provider == "sendgrid":
        delivered = sendgrid_webhook(stack, sendgrid_signer, request, "delivered", "ann@example.com", response="250 2.0.0 OK")
        bounced = sendgrid_webhook(
            stack, sendgrid_signer, request, "bounce", "gone@example.com", type="bounce", reason="550 5.1.1 no such user"
        )
        forged = sendgrid_webhook(stack, SendGridSigner(), request, "delivered", "ann@example.com")
    else:
        delivered = mailgun_webhook(
            stack, mailgun_signer, request, "delivered", "ann@example.com", **{"delivery-status": {"code": 250}}
        )
        bounced = mailgun_webhook(
            stack, mailgun_signer, request, "failed", "gone@example.com", severity="permanent", reason="bounce"
        )
        forged = mailgun_webhook(stack, MailgunSigner(), request, "delivered", "ann@example.com")
    assert delivered.status_code == 200 and delivered.json()["recorded"] == 1, delivered.text
    assert forged.status_code == (403 if provider == "sendgrid" else 406)

    shown = stack.message(message_id)
    # The bounce of the second recipient came last: the status moved on to bounced; the
    # delivery stays in the history.
    assert bounced.status_code == 200 and shown["status"] == "bounced"
    provider_events = [(e["type"], e["provider"], e["recipient"]) for e in shown["events"] if e["recipient"]]
    assert provider_events == [("delivered", provider, "ann@example.com"), ("bounced", provider, "gone@example.com")]

    refused = requests.post(
        f"{stack.api_url}/api/v1/messages", json=mail_body(to="Gone@example.com"), headers=stack.headers, timeout=10
    )
    assert refused.status_code == 422 and refused.json()["error"]["type"] == "recipient_suppressed"
    assert stack.post(mail_body(to="gone@example.com", ignore_suppressions=True))


def test_delivered_alone_shows_delivered(make_stack, simulator):
    signer = SendGridSigner()
    stack = make_stack(SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key_b64)
    stack.start_worker()
    message_id = stack.post(mail_body())
    stack.wait_for_status(message_id, "sent")
    (request,) = simulator.requests("sendgrid", accepted=True)
    assert sendgrid_webhook(stack, signer, request, "delivered", "ann@example.com").status_code == 200
    shown = stack.message(message_id)
    assert shown["status"] == "delivered"
    assert [e["type"] for e in shown["events"]] == ["queued", "sent", "delivered"]


def test_a_webhook_faster_than_our_sent_write_is_caught_up_by_it(make_stack, simulator):
    # The provider's event can arrive before the worker has written `sent` (a slow database
    # write, a send first taken for a timeout). It is recorded at once; the status follows it
    # when the message becomes sent.
    signer = SendGridSigner()
    stack = make_stack(SENDGRID_WEBHOOK_PUBLIC_KEY=signer.public_key_b64)
    message_id = stack.post(mail_body())  # no worker yet: the message waits in the queue
    body = json.dumps([sendgrid_event(message_id, "delivered")]).encode()
    response = requests.post(
        f"{stack.api_url}/webhooks/sendgrid",
        data=body,
        headers={"Content-Type": "application/json", **signer.headers(body)},
        timeout=10,
    )
    assert response.status_code == 200 and response.json()["recorded"] == 1
    assert stack.message(message_id)["status"] == "queued"

    stack.start_worker()

    shown = stack.wait_for_status(message_id, "delivered")
    assert [e["type"] for e in shown["events"]] == ["queued", "delivered", "sent"]
