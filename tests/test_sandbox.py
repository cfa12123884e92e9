"""Sandbox keys: mail is validated, stored and walked through the same pipeline (the API, SQS, a
real worker), but no provider is called; magic recipients decide the outcome, which arrives as
the same events and status changes a provider's webhook would bring, and never touches the
suppression list."""

import pytest
import requests

from mail import keys
from mail.models import Suppression, Team
from providers.sandbox import SANDBOX_DOMAIN

from .support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_each_magic_recipient_ends_in_its_status_and_no_provider_hears_of_it(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    _, secret = keys.create("sandbox", sandbox=True)
    sandbox = {"Authorization": f"Bearer {secret}"}
    # Suppressed for the team's live mail: the sandbox neither refuses it nor adds to the list.
    _, live = keys.create("live")
    Suppression.objects.create(team=Team.objects.get(name="default"), address=f"bounced@{SANDBOX_DOMAIN}", reason="manual")

    expected = {
        f"delivered@{SANDBOX_DOMAIN}": ("delivered", "delivered"),
        f"bounced+signup@{SANDBOX_DOMAIN}": ("bounced", "bounced"),
        f"complained@{SANDBOX_DOMAIN}": ("complained", "complained"),
        f"failed@{SANDBOX_DOMAIN}": ("failed", "failed"),
        "ann@example.com": ("delivered", "delivered"),  # any other address is delivered
    }
    ids = {}
    for address in expected:
        body = {"from": "shop@example.com", "to": address, "subject": "Test", "text": "t"}
        answer = requests.post(f"{stack.api_url}/api/v1/messages", json=body, headers=sandbox, timeout=10)
        assert answer.status_code == 202, answer.text
        ids[address] = answer.json()["id"]
    live_answer = requests.post(
        f"{stack.api_url}/api/v1/messages",
        json={"from": "shop@example.com", "to": f"bounced@{SANDBOX_DOMAIN}", "subject": "Test", "text": "t"},
        headers={"Authorization": f"Bearer {live}"},
        timeout=10,
    )
    assert live_answer.status_code == 422  # the live key is held to the list

    def shown(message_id):
        return requests.get(f"{stack.api_url}/api/v1/messages/{message_id}", headers=sandbox, timeout=10).json()

    for address, (status, event) in expected.items():
        wait_until(
            lambda address=address, status=status: shown(ids[address])["status"] == status,
            timeout=60,
            what=f"{address} to be {status}",
        )
        message = shown(ids[address])
        assert message["sandbox"] is True and message["provider"] in ("sandbox", "")
        assert event in [e["type"] for e in message["events"]], message["events"]
    assert simulator.requests() == []
    assert Suppression.objects.count() == 1  # only the one made above
