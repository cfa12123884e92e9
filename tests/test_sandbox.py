"""Sandbox keys: mail is validated, stored and walked through the same pipeline (the API, SQS, a
real worker), but no provider is called; magic recipients decide the outcome, which arrives as
the same events and status changes a provider's webhook would bring, and never touches the
suppression list."""

import pytest
import requests
from rest_framework.test import APIClient

from mail import keys
from mail.models import Scope, Suppression, Team
from providers.sandbox import SANDBOX_DOMAIN

from .support import wait_until


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
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


def test_a_sandbox_key_neither_sees_nor_changes_the_teams_live_data(db, provisioned_queues):
    _, live = keys.create("live")
    sandbox_key, sandbox = keys.create("sandbox", scopes=Scope.values, sandbox=True)
    assert not {Scope.SUPPRESSIONS_MANAGE, Scope.ERASURES_MANAGE} & set(sandbox_key.profile.scopes)
    live_client, sandbox_client = APIClient(), APIClient()
    live_client.credentials(HTTP_AUTHORIZATION=f"Bearer {live}")
    sandbox_client.credentials(HTTP_AUTHORIZATION=f"Bearer {sandbox}")
    body = {"from": "shop@example.com", "to": "ann@example.com", "subject": "s", "text": "t"}
    live_id = live_client.post("/api/v1/messages", body, format="json").json()["id"]
    sandbox_id = sandbox_client.post("/api/v1/messages", body, format="json").json()["id"]

    assert sandbox_client.get(f"/api/v1/messages/{live_id}").status_code == 404
    assert sandbox_client.delete(f"/api/v1/messages/{live_id}").status_code == 404
    assert [m["id"] for m in sandbox_client.get("/api/v1/messages").json()["data"]] == [sandbox_id]
    assert [m["id"] for m in live_client.get("/api/v1/messages").json()["data"]] == [live_id]
    # Even a profile given the scope by hand: the team's live list is not a sandbox's to change.
    sandbox_key.profile.scopes = Scope.values
    sandbox_key.profile.save()
    refused = sandbox_client.post("/api/v1/suppressions", {"address": "ann@example.com"}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "insufficient_scope"
