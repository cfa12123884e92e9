"""Keys, teams and the lists through a real API process (tests/stack.py), as a client meets them:
the refusals of scope, team, expiry and network; 250 messages paged by 100 while more arrive
between the pages, none skipped and none repeated; bad input on every new operation a 4xx."""

from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from mail import keys
from mail.models import Scope, Team

from .stack import Stack, mail_body

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def api(django_db_setup, django_db_blocker, provisioned_queues, tmp_path_factory):
    """One API process for the module (no worker: nothing here needs a message sent)."""
    with django_db_blocker.unblock():
        stack = Stack(tmp_path_factory.mktemp("teams"))
    stack.start_api()
    yield stack
    stack.kill()


def call(api, method, path, secret, headers=None, **kwargs):
    headers = {"Authorization": f"Bearer {secret}", **(headers or {})}
    return requests.request(method, f"{api.api_url}{path}", headers=headers, timeout=30, **kwargs)


def error_type(response):
    return response.json()["error"]["type"]


def test_scopes_teams_expiry_and_networks(api):
    shop, other = Team.objects.create(name="shop"), Team.objects.create(name="other")
    _, sender = keys.create("sender", shop, [Scope.MESSAGES_SEND])
    _, reader = keys.create("reader", shop, [Scope.MESSAGES_READ])
    _, other_sender = keys.create("other sender", other, [Scope.MESSAGES_SEND])
    _, expired = keys.create("expired", shop, expires=timezone.now() - timedelta(minutes=1))
    _, elsewhere = keys.create("elsewhere", shop, networks=["192.0.2.0/24"])
    _, here = keys.create("here", shop, networks=["127.0.0.1/32"])

    mine = call(api, "POST", "/api/v1/messages", sender, json=mail_body("mine")).json()["id"]
    theirs = call(api, "POST", "/api/v1/messages", other_sender, json=mail_body("theirs")).json()["id"]

    refused = call(api, "GET", f"/api/v1/messages/{mine}", sender)
    assert refused.status_code == 403 and error_type(refused) == "insufficient_scope"
    assert "messages:read" in refused.json()["error"]["message"]
    assert call(api, "GET", "/api/v1/messages", sender).status_code == 403

    assert call(api, "GET", f"/api/v1/messages/{mine}", reader).status_code == 200
    hidden = call(api, "GET", f"/api/v1/messages/{theirs}", reader)
    assert hidden.status_code == 404 and error_type(hidden) == "not_found"
    assert [m["id"] for m in call(api, "GET", "/api/v1/messages", reader).json()["data"]] == [mine]

    late = call(api, "GET", "/api/v1/messages", expired)
    assert late.status_code == 401 and error_type(late) == "key_expired"
    outside = call(api, "GET", "/api/v1/messages", elsewhere, headers={"X-Forwarded-For": "192.0.2.7"})
    assert outside.status_code == 403 and error_type(outside) == "address_not_allowed"
    assert call(api, "GET", "/api/v1/messages", here).status_code == 200


def test_250_messages_paged_by_100_while_more_arrive(api):
    team = Team.objects.create(name="pager")
    _, secret = keys.create("pager", team)
    sent = []
    for batch in range(3):
        answer = call(
            api,
            "POST",
            "/api/v1/messages/batch",
            secret,
            json=[mail_body(f"m{batch}-{i}") for i in range(100 if batch < 2 else 50)],
        )
        assert answer.status_code == 202, answer.text
        sent += [item["id"] for item in answer.json()["data"]]

    seen, after, pages = [], None, 0
    while True:
        page = call(api, "GET", "/api/v1/messages", secret, params={"limit": 100, **({"after": after} if after else {})}).json()
        seen += [m["id"] for m in page["data"]]
        pages += 1
        # More mail arrives between the pages: it is newer than every page already read.
        assert (
            call(
                api, "POST", "/api/v1/messages/batch", secret, json=[mail_body(f"late {pages}-{i}") for i in range(7)]
            ).status_code
            == 202
        )
        if not page["has_more"]:
            break
        after = page["next_cursor"]

    assert pages == 3 and len(seen) == 250
    assert len(set(seen)) == 250 and set(seen) == set(sent)  # none repeated, none skipped
    assert seen == list(reversed(sent))  # newest first, in the order accepted
    newest = call(api, "GET", "/api/v1/messages", secret, params={"limit": 100, "before": page["previous_cursor"]}).json()
    assert len(newest["data"]) == 100 and newest["has_more"] is True


BAD = [
    ("GET", "/api/v1/messages?colour=red"),
    ("GET", "/api/v1/messages?after=%00%01"),
    ("GET", "/api/v1/messages?limit=1000000000000"),
    ("GET", "/api/v1/messages?recipient=a%40example.com%0D%0ABcc:%20b%40example.com"),
    ("GET", "/api/v1/suppressions?before=bm90IGEgY3Vyc29y"),
    ("GET", "/api/v1/suppressions?limit=-1"),
    ("DELETE", "/api/v1/suppressions/a%40example.com%0D%0ABcc:%20b%40example.com"),
    ("POST", "/api/v1/suppressions"),
]


def test_bad_input_on_the_new_operations_is_a_4xx(api):
    _, secret = keys.create("careless", Team.objects.create(name="careless"))
    for method, path in BAD:
        body = {"address": "a@example.com\r\nBcc: b@example.com"} if method == "POST" else None
        response = call(api, method, path, secret, json=body)
        assert response.status_code == 400, (method, path, response.text)
        assert error_type(response) == "validation_error", (method, path)
