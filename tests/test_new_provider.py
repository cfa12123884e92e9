"""A provider is one folder plus one registry line: a throwaway provider, defined in the test
suite (tests/postcard_provider.py) and nowhere else, is registered, sent through by a real worker process, refused by the API beyond
its declared limits, switched in the admin's model, and reports a delivery through the one
webhook view that serves every provider. No file outside this test is touched to do it."""

import hashlib
import hmac
import json
import sys

import pytest
from django.test import override_settings

from mail.management.commands.serve import processor_argv
from mail.models import Message, ProviderSetting
from mail.runtime import RUNTIME
from providers.registry import REGISTRY

from .postcard_provider import NAME, SPEC
from .support import ServiceProcess, drain, service_env, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The worker process registers the provider before anything else reads the registry, then runs
# the production worker command line (what a deployment would do from its own entry point).
WORKER = "import sys; from providers.registry import REGISTRY; from tests.postcard_provider import SPEC; REGISTRY.register(SPEC); from mailer_project.celery_worker import main; sys.exit(main())"


@pytest.fixture
def postcard(tmp_path, empty_queues, sqs):
    drain(sqs, empty_queues.queue_url)
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    env = service_env(MAIL_PROVIDERS=f"{NAME},sendgrid", POSTCARD_OUTBOX=str(outbox))
    celery_args = processor_argv(pool="threads")[3:]  # after `python -m mailer_project.celery_worker`
    with REGISTRY.registered(SPEC), override_settings(MAIL_PROVIDERS=[NAME, "sendgrid"], POSTCARD_WEBHOOK_KEY="card-key"):
        RUNTIME.reset()
        worker = ServiceProcess([sys.executable, "-c", WORKER, *celery_args], env, tmp_path / "worker.log")
        try:
            worker.wait_for_output("ready.")
            yield outbox
        finally:
            worker.stop()
            RUNTIME.reset()


def post(api_client, **changes):
    body = {"from": "shop@example.com", "to": "ann@example.com", "subject": "Greetings", "text": "Wish you were here", **changes}
    return api_client.post("/api/v1/messages", data=json.dumps(body), content_type="application/json")


def test_a_registered_provider_sends_takes_events_and_limits(api_client, postcard, simulator):
    accepted = post(api_client)
    assert accepted.status_code == 202, accepted.content
    message_id = accepted.json()["id"]

    message = wait_until(
        lambda: (m := Message.objects.get(pk=message_id)).status == "sent" and m, timeout=60, what="the postcard to be sent"
    )
    assert message.provider == NAME and message.provider_message_id == f"card-{message_id[:8]}"
    assert json.loads((postcard / f"{message_id}.json").read_text())["subject"] == "Greetings"
    assert simulator.requests() == []  # the first provider took it: SendGrid was never asked

    # Its limits are the API's now: three recipients fit SendGrid and Mailgun, not a postcard.
    crowded = post(api_client, to=["a@example.com", "b@example.com"], cc="c@example.com")
    assert crowded.status_code == 400 and "At most 2 recipients" in crowded.json()["error"]["fields"]["to"][0]
    assert post(api_client, headers={"X-Postcard-Stamp": "1"}).status_code == 400

    # Its webhook, through the same view as every provider's.
    event = json.dumps({"id": message_id, "event_id": "e-1", "to": "ann@example.com"}).encode()
    signature = hmac.new(b"card-key", event, hashlib.sha256).hexdigest()
    url = f"/webhooks/{NAME}"
    assert (
        api_client.post(url, data=event, content_type="application/json", HTTP_X_POSTCARD_SIGNATURE="forged").status_code == 403
    )
    answer = api_client.post(url, data=event, content_type="application/json", HTTP_X_POSTCARD_SIGNATURE=signature)
    assert answer.status_code == 200 and answer.json()["recorded"] == 1
    assert api_client.get(f"/api/v1/messages/{message_id}").json()["status"] == "delivered"

    # And the admin's switch knows it.
    assert (NAME, NAME) in ProviderSetting._meta.get_field("name").choices
