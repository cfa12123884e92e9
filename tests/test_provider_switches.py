"""Runtime provider switches: an operator turns providers off and on in the admin, and running
workers follow within seconds, without a restart."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model

from mail.models import Message, ProviderSetting

from .stack import mail_body
from .support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_switching_providers_off_and_on_in_the_admin(make_stack, simulator):
    stack = make_stack(PROVIDER_SETTINGS_CACHE_SECONDS="1", NO_PROVIDER_RECHECK_SECONDS="1")
    worker = stack.start_worker()
    get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    admin = stack.admin_session("ops", "pw")

    first = stack.wait_for_status(stack.post(mail_body("before")), "sent")
    assert first["provider"] == "sendgrid"

    # SendGrid off: within the workers' cache time, messages go straight to Mailgun, no failover.
    stack.admin_form(admin, "mail/providersetting/add", {"name": "sendgrid", "priority": "1"})  # "enabled" unticked
    via_mailgun = wait_until(lambda: _next_message_sent_by(stack, "mailgun"), timeout=30, what="a message sent by Mailgun")
    assert [e["type"] for e in via_mailgun["events"]] == ["queued", "sent"]

    # Both off: mail waits in the queue rather than failing.
    stack.admin_form(admin, "mail/providersetting/add", {"name": "mailgun", "priority": "2"})
    sendgrid = ProviderSetting.objects.get(name="sendgrid")
    held = wait_until(lambda: _next_message_held(stack, worker), timeout=30, what="a message held in the queue")
    requests_before = len(simulator.requests())
    assert Message.objects.get(pk=held).status == "queued"

    # SendGrid back on: the held message is delivered by it.
    stack.admin_form(admin, f"mail/providersetting/{sendgrid.pk}/change", {"name": "sendgrid", "enabled": "on", "priority": "1"})
    message = stack.wait_for_status(held, "sent")
    assert message["provider"] == "sendgrid"
    assert len(simulator.requests()) == requests_before + 1
    # Each switch is in the admin's history, with who made it.
    assert LogEntry.objects.filter(user__username="ops", content_type__model="providersetting").count() == 3


def _next_message_sent_by(stack, provider):
    """Send one message; if it went through `provider`, return it."""
    message = stack.wait_for_status(stack.post(mail_body("after the switch")), "sent")
    return message if message["provider"] == provider else None


def _next_message_held(stack, worker):
    """Send one message; if the worker held it for want of a provider, return its id."""
    message_id = stack.post(mail_body("held"))

    def settled():
        held = any("every provider is switched off" in line and message_id in line for line in worker.output().splitlines())
        return "held" if held else Message.objects.get(pk=message_id).status == "sent" and "sent"

    return message_id if wait_until(settled, what="the message to be held or sent") == "held" else None
