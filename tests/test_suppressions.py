"""Suppression: an address that hard-bounced or complained is refused at the API (422
recipient_suppressed, naming it) unless the client overrides it; an operator sees and removes
suppressions in the admin; a team lists, adds and deletes its own through the API."""

import json

import pytest
from rest_framework.test import APIClient

from mail import keys
from mail.models import Message, Suppression, Team
from mail.suppressions import suppress_if_final
from providers.events import DeliveryEvent, EventType

from .support import sent_message

URL = "/api/v1/messages"


def post(client, body):
    return client.post(URL, data=json.dumps(body), content_type="application/json")


def mail(**changes):
    return {"from": "shop@example.com", "to": ["ann@example.com"], "subject": "Hi", "text": "x", **changes}


@pytest.fixture
def suppressed(api_key):
    team = api_key[0].profile.team
    return [
        Suppression.objects.create(
            team=team, address="gone@example.com", reason=Suppression.Reason.HARD_BOUNCE, provider="sendgrid"
        ),
        Suppression.objects.create(
            team=team, address="angry@example.com", reason=Suppression.Reason.COMPLAINT, provider="mailgun"
        ),
    ]


def test_a_suppressed_recipient_is_refused_by_name_and_nothing_is_queued(api_client, provisioned_queues, suppressed):
    response = post(api_client, mail(to=["ann@example.com", "Gone <GONE@example.com>"], bcc="angry@example.com"))
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["type"] == "recipient_suppressed"
    assert (
        "GONE@example.com" in error["message"]
        and "angry@example.com" in error["message"]
        and "ignore_suppressions" in error["message"]
    )
    assert list(error["fields"]) == ["to", "bcc"]
    assert "hard bounce" in error["fields"]["to"][0] and "complaint" in error["fields"]["bcc"][0]
    assert Message.objects.count() == 0


def test_the_client_may_override_it_explicitly(api_client, provisioned_queues, suppressed):
    response = post(api_client, mail(cc="gone@example.com", ignore_suppressions=True))
    assert response.status_code == 202, response.content
    assert post(api_client, mail(cc="gone@example.com", ignore_suppressions=False)).status_code == 422


def test_suppression_holds_for_every_key_of_the_team_and_no_other_team(api_key, provisioned_queues, suppressed):
    same_team, other_team = APIClient(), APIClient()
    same_team.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.create('same team', api_key[0].profile.team)[1]}")
    other_team.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.create('other', Team.objects.create(name='other'))[1]}")
    assert post(same_team, mail(to="gone@example.com")).status_code == 422
    assert post(other_team, mail(to="gone@example.com")).status_code == 202


def test_ignore_suppressions_must_be_a_boolean(api_client, suppressed):
    response = post(api_client, mail(ignore_suppressions="maybe"))
    assert response.status_code == 400
    assert "ignore_suppressions" in response.json()["error"]["fields"]


def test_an_operator_sees_suppressions_and_deleting_one_lets_mail_through(operator, api_client, provisioned_queues, suppressed):
    page = operator.get("/admin/mail/suppression/", {"q": "gone@"}).content.decode()
    assert "gone@example.com" in page and "angry@example.com" not in page
    gone = suppressed[0]
    assert operator.get(f"/admin/mail/suppression/{gone.pk}/change/").status_code == 200
    assert operator.get("/admin/mail/suppression/add/").status_code == 403
    response = operator.post(f"/admin/mail/suppression/{gone.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Suppression.objects.filter(address="gone@example.com").exists()
    assert post(api_client, mail(to="gone@example.com")).status_code == 202


# --- the suppressions API (per team) ---------------------------------------------------------

LIST = "/api/v1/suppressions"


def test_the_team_lists_its_suppressions_newest_first_by_reason_and_date(api_client, suppressed):
    other = Team.objects.create(name="other")
    Suppression.objects.create(team=other, address="theirs@example.com", reason=Suppression.Reason.COMPLAINT)
    everything = api_client.get(LIST).json()
    assert [s["address"] for s in everything["data"]] == ["angry@example.com", "gone@example.com"]
    assert everything["has_more"] is False and everything["data"][0]["reason"] == "complaint"
    assert [s["address"] for s in api_client.get(LIST, {"reason": "hard_bounce"}).json()["data"]] == ["gone@example.com"]
    first = api_client.get(LIST, {"limit": 1}).json()
    assert first["has_more"] is True
    second = api_client.get(LIST, {"limit": 1, "after": first["next_cursor"]}).json()
    assert [s["address"] for s in second["data"]] == ["gone@example.com"] and second["has_more"] is False
    since = suppressed[1].created_at.isoformat()
    assert [s["address"] for s in api_client.get(LIST, {"created_after": since}).json()["data"]] == ["angry@example.com"]
    assert api_client.get(LIST, {"created_before": suppressed[0].created_at.isoformat()}).json()["data"] == []


def test_adding_and_deleting_an_address(api_client, provisioned_queues, suppressed):
    added = api_client.post(LIST, data=json.dumps({"address": "New@Example.com"}), content_type="application/json")
    assert added.status_code == 201 and added.json()["address"] == "new@example.com" and added.json()["reason"] == "manual"
    assert post(api_client, mail(to="NEW@example.com")).status_code == 422
    again = api_client.post(LIST, data=json.dumps({"address": "gone@example.com"}), content_type="application/json")
    assert again.status_code == 200 and again.json()["reason"] == "hard_bounce"  # its reason stays

    assert api_client.delete(f"{LIST}/Gone%40Example.com").status_code == 204
    assert api_client.delete(f"{LIST}/gone@example.com").status_code == 404
    assert post(api_client, mail(to="gone@example.com")).status_code == 202


def test_another_teams_list_is_out_of_reach(api_key, client, suppressed):
    _, other = keys.create("other", Team.objects.create(name="other"))
    headers = {"HTTP_AUTHORIZATION": f"Bearer {other}"}
    assert client.get(LIST, **headers).json()["data"] == []
    assert client.delete(f"{LIST}/gone@example.com", **headers).status_code == 404
    assert Suppression.objects.filter(address="gone@example.com").exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"address": "not an address"},
        {"address": "ann@example.com\r\nBcc: x@example.com"},
        {"address": "Ann <ann@example.com>"},
        {"address": ["ann@example.com"]},
        {"address": "a" * 400 + "@example.com"},
        {"address": "ann@example.com", "reason": "complaint"},
    ],
)
def test_a_bad_address_to_add_is_a_400(api_client, db, body):
    response = api_client.post(LIST, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["type"] == "validation_error"
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("address", ["ann%40example.com%0D%0ABcc%3Ax%40example.com", "nobody", "a%00b%40example.com", "x" * 600])
def test_a_bad_address_to_delete_is_a_400(api_client, db, address):
    response = api_client.delete(f"{LIST}/{address}")
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["address"]


@pytest.mark.parametrize(
    "query", ["reason=bored", "colour=red", "limit=1000", "after=garbage", "created_after=soon", "reason=manual&reason=complaint"]
)
def test_bad_list_parameters_are_a_400(api_client, db, query):
    response = api_client.get(f"{LIST}?{query}")
    assert response.status_code == 400 and response.json()["error"]["type"] == "validation_error", response.content


def test_a_hard_bounce_suppresses_for_the_messages_team_only(api_key, db):
    other = Team.objects.create(name="other")
    message = sent_message(api_key[0], recipients="ann@example.com")
    assert suppress_if_final(
        DeliveryEvent("sendgrid", EventType.BOUNCED, str(message.id), "e1", "Ann@example.com", None, permanent=True),
        message.id,
        message.team_id,
    )
    assert list(Suppression.objects.values_list("team", "address")) == [(api_key[0].profile.team_id, "ann@example.com")]
    assert not Suppression.objects.filter(team=other).exists()
