"""Suppression: an address that hard-bounced or complained is refused at the API (422
recipient_suppressed, naming it) unless the client overrides it; an operator sees and removes
suppressions in the admin."""

import json

import pytest
from rest_framework.test import APIClient

from mail import keys
from mail.models import Message, Suppression, Team

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
