"""The admin against an attacker and for an operator (issue 23): the login's brute-force lockout,
by account and by address, cleared by the operator's command; revoking a key cancels its pending
mail. Through HTTP into a real API process, as a browser would send it."""

import subprocess
import sys
from datetime import timedelta

import pytest
import requests
from django.contrib.auth import get_user_model
from django.utils import timezone
from requests.adapters import HTTPAdapter
from rest_framework_api_key.models import APIKey

from mail.models import Message

from .stack import accepted_per_message, mail_body
from .support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIMIT = 4


class FromAddress(HTTPAdapter):
    """Connections made from this local address (127.0.0.0/8 is all this machine's): a second
    client address for the server to see, with no proxy in between."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def login(api_url: str, username: str, password: str, source: str = "127.0.0.1", **headers) -> requests.Response:
    """One admin login, as the login form posts it; the answer without following redirects."""
    session = requests.Session()
    session.mount("http://", FromAddress(source))
    session.get(f"{api_url}/admin/login/", timeout=10)
    return session.post(
        f"{api_url}/admin/login/?next=/admin/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{api_url}/admin/login/", **headers},
        allow_redirects=False,
        timeout=10,
    )


def logged_in(response: requests.Response) -> bool:
    return response.status_code == 302 and response.headers["Location"] == "/admin/"


def test_wrong_passwords_lock_the_account_until_the_operator_clears_it(make_stack):
    stack = make_stack(ADMIN_LOGIN_FAILURE_LIMIT=str(LIMIT))
    users = get_user_model()
    users.objects.create_superuser("ops", "ops@example.com", "the-right-password")
    users.objects.create_superuser("oncall", "oncall@example.com", "another-right-password")

    # Each guess claims another address in X-Forwarded-For: with no proxy configured it is not believed.
    answers = [login(stack.api_url, "ops", f"guess-{n}", **{"X-Forwarded-For": f"203.0.113.{n}"}) for n in range(LIMIT)]
    assert [a.status_code for a in answers[:-1]] == [200] * (LIMIT - 1)  # the form again, "incorrect"
    locked = answers[-1]
    assert locked.status_code == 429
    error = locked.json()["error"]
    assert error["type"] == "locked_out" and "manage.py axes_reset" in error["message"]
    assert 14 * 60 < int(locked.headers["Retry-After"]) <= 15 * 60  # the default cool-off, 15 minutes
    assert error["locked_until"] > timezone.now().isoformat()

    # Locked: the right password fails too, from this address and from another.
    assert login(stack.api_url, "ops", "the-right-password").status_code == 429
    assert login(stack.api_url, "ops", "the-right-password", source="127.0.0.2").status_code == 429
    # Another account from another address is not locked.
    assert logged_in(login(stack.api_url, "oncall", "another-right-password", source="127.0.0.2"))
    # This address is locked as well (the guesses came from it), for every account.
    assert login(stack.api_url, "oncall", "another-right-password").status_code == 429

    # The operator clears the locks (docs/operations.md); the right password works again.
    done = subprocess.run([sys.executable, "manage.py", "axes_reset"], env=stack.env, capture_output=True, text=True, check=True)
    assert "removed" in done.stdout.lower() or "reset" in done.stdout.lower(), done.stdout
    assert logged_in(login(stack.api_url, "ops", "the-right-password"))


def test_revoking_a_key_in_the_admin_cancels_its_scheduled_and_queued_mail(make_stack, simulator):
    stack = make_stack(API_KEY_CACHE_SECONDS="1")
    queued = stack.post(mail_body("queued, not yet taken"))
    scheduled = stack.post(mail_body("for tomorrow", send_at=(timezone.now() + timedelta(hours=20)).isoformat()))
    assert Message.objects.get(pk=scheduled).status == "scheduled"
    key = APIKey.objects.get(name="stack")

    get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password")
    session = stack.admin_session("ops", "a-long-password")
    url = f"{stack.api_url}/admin/rest_framework_api_key/apikey/{key.pk}/change/"
    response = session.post(
        url,
        data={
            "name": key.name,
            "expiry_date_0": "",
            "expiry_date_1": "",
            "revoked": "on",
            # The key's team, scopes and networks (mail/admin_keys.py), as the page shows them.
            "profile-TOTAL_FORMS": "1",
            "profile-INITIAL_FORMS": "1",
            "profile-MIN_NUM_FORMS": "1",
            "profile-MAX_NUM_FORMS": "1",
            "profile-0-api_key": key.pk,
            "profile-0-team": str(key.profile.team_id),
            "profile-0-scopes": key.profile.scopes,
            "profile-0-allowed_networks": "",
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
        },
        headers={"Referer": url},
        timeout=30,
    )
    assert response.status_code == 200 and f"Revoked {key.prefix} (stack): canceled 2 pending message(s)." in response.text

    key.refresh_from_db()
    assert key.revoked
    for message_id in (queued, scheduled):
        message = Message.objects.get(pk=message_id)
        assert message.status == "canceled"
        assert [(e.type, e.detail) for e in message.events.all()][-1] == ("canceled", "the API key was revoked")
    # The key no longer authenticates, in every API worker once API_KEY_CACHE_SECONDS have passed.
    wait_until(
        lambda: requests.get(f"{stack.api_url}/api/v1/messages/{queued}", headers=stack.headers, timeout=10).status_code == 401,
        timeout=1 + 8,
        what="the revoked key refused",
    )

    # A worker takes the queued task and drops it; the housekeeping never releases the other.
    stack.start_worker()
    wait_until(stack.queue_is_empty, timeout=60, what="the worker to take the canceled message's task")
    Message.objects.filter(pk=scheduled).update(send_at=timezone.now())
    subprocess.run([sys.executable, "manage.py", "housekeeping", "--once"], env=stack.env, check=True, capture_output=True)
    assert stack.queue_is_empty()
    assert not accepted_per_message(simulator).keys() & {queued, scheduled}
    assert set(Message.objects.filter(pk__in=[queued, scheduled]).values_list("status", flat=True)) == {"canceled"}
