"""Keys belong to a team and carry scopes, an optional expiry and an optional network allow-list
(docs/api.md, "Keys, teams and scopes"): what each refusal looks like, how the client's address
is read, the command and the admin that make keys, and the migration that gave every existing key
a team."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone
from rest_framework_api_key.models import APIKey

from mail import keys
from mail.models import ApiKeyProfile, Message, Scope, Suppression, Team, default_scopes

from .stack import mail_body

MESSAGES = "/api/v1/messages"
SUPPRESSIONS = "/api/v1/suppressions"


def bearer(secret):
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def error_of(response):
    return response.json()["error"]


@pytest.fixture
def team(db):
    return Team.objects.create(name="shop")


def test_a_key_without_the_scope_gets_403_naming_it(client, team, provisioned_queues):
    _, sender = keys.create("sender", team, [Scope.MESSAGES_SEND])
    sent = client.post(MESSAGES, data=json.dumps(mail_body("x")), content_type="application/json", **bearer(sender))
    assert sent.status_code == 202
    for method, url, scope in [
        ("get", MESSAGES, "messages:read"),
        ("get", f"{MESSAGES}/{sent.json()['id']}", "messages:read"),
        ("get", SUPPRESSIONS, "suppressions:manage"),
        ("delete", f"{SUPPRESSIONS}/a@example.com", "suppressions:manage"),
    ]:
        response = getattr(client, method)(url, **bearer(sender))
        assert response.status_code == 403, (url, response.content)
        assert error_of(response)["type"] == "insufficient_scope"
        assert scope in error_of(response)["message"] and error_of(response)["fields"] == {"scope": [scope]}

    _, reader = keys.create("reader", team, [Scope.MESSAGES_READ])
    refused = client.post(MESSAGES, data=json.dumps(mail_body("y")), content_type="application/json", **bearer(reader))
    assert refused.status_code == 403 and error_of(refused)["fields"] == {"scope": ["messages:send"]}
    assert client.get(f"{MESSAGES}/{sent.json()['id']}", **bearer(reader)).status_code == 200
    assert Message.objects.count() == 1


def test_a_key_reads_only_its_own_teams_messages(client, team, provisioned_queues):
    _, mine = keys.create("mine", team)
    _, theirs = keys.create("theirs", Team.objects.create(name="elsewhere"))
    message_id = client.post(MESSAGES, data=json.dumps(mail_body("x")), content_type="application/json", **bearer(mine)).json()[
        "id"
    ]
    assert client.get(f"{MESSAGES}/{message_id}", **bearer(theirs)).status_code == 404
    assert client.delete(f"{MESSAGES}/{message_id}", **bearer(theirs)).status_code == 404
    assert client.get(MESSAGES, **bearer(theirs)).json()["data"] == []
    assert Message.objects.get().team == team


def test_an_expired_key_gets_401_key_expired(client, team):
    _, secret = keys.create("old", team, expires=timezone.now() - timedelta(seconds=1))
    response = client.get(MESSAGES, **bearer(secret))
    assert response.status_code == 401 and error_of(response)["type"] == "key_expired"
    assert response["WWW-Authenticate"].startswith("Bearer")
    _, later = keys.create("later", team, expires=timezone.now() + timedelta(days=1))
    assert client.get(MESSAGES, **bearer(later)).status_code == 200


def test_an_address_outside_the_allow_list_gets_403(client, team):
    _, office = keys.create("office", team, networks=["10.0.0.0/8", "2001:db8::/32"])
    # The test client's peer is 127.0.0.1; without a trusted proxy a client's X-Forwarded-For is not believed.
    response = client.get(MESSAGES, HTTP_X_FORWARDED_FOR="10.1.2.3", **bearer(office))
    assert response.status_code == 403 and error_of(response)["type"] == "address_not_allowed"
    assert client.get(MESSAGES, REMOTE_ADDR="10.9.9.9", **bearer(office)).status_code == 200
    assert client.get(MESSAGES, REMOTE_ADDR="2001:db8::1", **bearer(office)).status_code == 200
    assert client.get(MESSAGES, REMOTE_ADDR="::ffff:10.0.0.1", **bearer(office)).status_code == 200
    with override_settings(TRUSTED_PROXY_COUNT=1):
        # Behind the ALB: the address it appended, not one a client put in front of it.
        assert client.get(MESSAGES, HTTP_X_FORWARDED_FOR="203.0.113.9, 10.1.2.3", **bearer(office)).status_code == 200
        refused = client.get(MESSAGES, HTTP_X_FORWARDED_FOR="10.1.2.3, 203.0.113.9", **bearer(office))
        assert refused.status_code == 403 and error_of(refused)["type"] == "address_not_allowed"


def test_a_key_made_without_a_team_authenticates_nowhere(client, db):
    _, secret = APIKey.objects.create_key(name="the library's own")
    response = client.get(MESSAGES, **bearer(secret))
    assert response.status_code == 401 and "no team" in error_of(response)["message"]


def test_the_key_and_its_profile_are_one_query(client, team, django_assert_num_queries):
    _, secret = keys.create("one query", team, [Scope.MESSAGES_READ])
    with django_assert_num_queries(2):  # the key with its profile; the page
        assert client.get(MESSAGES, **bearer(secret)).status_code == 200


def test_create_api_key_takes_team_scopes_expiry_and_networks(client, db, capsys):
    call_command(
        "create_api_key",
        "billing",
        "--team",
        "billing",
        "--scope",
        "messages:read",
        "--scope",
        "suppressions:manage",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--allow",
        "127.0.0.0/8",
    )
    secret = capsys.readouterr().out.strip()
    profile = ApiKeyProfile.objects.select_related("api_key", "team").get()
    assert profile.team.name == "billing" and profile.scopes == ["messages:read", "suppressions:manage"]
    assert profile.allowed_networks == ["127.0.0.0/8"] and profile.api_key.expiry_date.year == 2099
    assert client.get(SUPPRESSIONS, **bearer(secret)).status_code == 200
    assert client.post(MESSAGES, data="{}", content_type="application/json", **bearer(secret)).status_code == 403

    call_command("create_api_key", "everything")
    # Every scope but erasing people's data, which must be asked for.
    assert ApiKeyProfile.objects.get(api_key__name="everything").scopes == default_scopes()
    assert ApiKeyProfile.objects.get(api_key__name="everything").team.name == "default"
    with pytest.raises(CommandError, match="not an IP address"):
        call_command("create_api_key", "bad", "--allow", "10.0.0.300/8")
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("create_api_key", "bad", "--expires", "tomorrow")
    with pytest.raises(CommandError):
        call_command("create_api_key", "bad", "--scope", "everything:all")


def test_the_admin_makes_a_key_with_its_team_scopes_and_networks(operator, team):
    form = {
        "name": "from the admin",
        "profile-TOTAL_FORMS": "1",
        "profile-INITIAL_FORMS": "0",
        "profile-MIN_NUM_FORMS": "1",
        "profile-MAX_NUM_FORMS": "1",
        "profile-0-team": str(team.pk),
        "profile-0-scopes": ["messages:read", "webhooks:manage"],
        "profile-0-allowed_networks": "192.0.2.0/24\n2001:db8::/32",
    }
    bad = operator.post("/admin/rest_framework_api_key/apikey/add/", {**form, "profile-0-allowed_networks": "nonsense"})
    assert bad.status_code == 200 and b"not an IP address" in bad.content
    response = operator.post("/admin/rest_framework_api_key/apikey/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    profile = ApiKeyProfile.objects.get(api_key__name="from the admin")
    assert profile.team == team and profile.scopes == ["messages:read", "webhooks:manage"]
    assert profile.allowed_networks == ["192.0.2.0/24", "2001:db8::/32"]
    listing = operator.get("/admin/rest_framework_api_key/apikey/").content.decode()
    assert "from the admin" in listing and "shop" in listing


@pytest.mark.django_db(transaction=True)
def test_the_migration_puts_existing_keys_messages_and_suppressions_in_a_default_team_with_every_scope():
    executor = MigrationExecutor(connection)
    executor.migrate([("mail", "0007_messageevent_permanent")])
    old = executor.loader.project_state([("mail", "0007_messageevent_permanent")]).apps
    try:
        key = old.get_model("rest_framework_api_key", "APIKey").objects.create(
            id="abc.def", prefix="abc", hashed_key="x", name="old"
        )
        old.get_model("mail", "Message").objects.create(
            api_key=key, from_email="a@example.com", recipients="Ann@Example.com, b@example.com", recipient_count=2, subject="s"
        )
        old.get_model("mail", "Suppression").objects.create(address="gone@example.com", reason="hard_bounce")
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    profile = ApiKeyProfile.objects.select_related("team").get(api_key_id="abc.def")
    assert profile.team.name == "default" and profile.scopes == default_scopes() and profile.allowed_networks == []
    message = Message.objects.get()
    assert message.team == profile.team and message.recipient_addresses == ["ann@example.com", "b@example.com"]
    assert message.tags == [] and message.metadata == {}
    assert Suppression.objects.get().team == profile.team
