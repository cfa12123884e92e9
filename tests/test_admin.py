"""What an operator sees in the Django admin."""

import json

import pytest


@pytest.fixture
def message_id(api_client, provisioned_queues):
    body = {"from": "a@example.com", "to": "findme@example.com", "subject": "Quarterly invoice", "text": "x"}
    return api_client.post("/api/v1/messages", data=json.dumps(body), content_type="application/json").json()["id"]


@pytest.mark.parametrize("query", ["findme@example.com", "Quarterly", "{id}"], ids=["recipient", "subject", "id"])
def test_operator_finds_a_message_by_recipient_subject_or_id(operator, message_id, query):
    response = operator.get("/admin/mail/message/", {"q": query.format(id=message_id)})
    assert response.status_code == 200
    assert message_id in response.content.decode()


def test_message_page_shows_its_events_read_only(operator, message_id):
    response = operator.get(f"/admin/mail/message/{message_id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Quarterly invoice" in page and "queued" in page
    assert 'name="subject"' not in page  # read-only: no input to edit
    assert 'name="_save"' not in page and "deletelink" not in page
    assert operator.get("/admin/mail/message/add/").status_code == 403
    assert operator.post(f"/admin/mail/message/{message_id}/delete/", {"post": "yes"}).status_code == 403


def test_operator_sees_api_keys_by_prefix(operator, api_key):
    response = operator.get("/admin/rest_framework_api_key/apikey/")
    assert response.status_code == 200
    assert api_key[0].prefix in response.content.decode()
    assert api_key[1] not in response.content.decode()


def test_discarding_a_dead_letter_fails_its_message_and_is_audited(operator, message_id):
    from django.contrib.admin.models import LogEntry

    from mail.models import DeadLetter, Message

    dead_letter = DeadLetter.objects.create(sqs_message_id="sqs-1", message_id=message_id, reason="poison", raw_body="?")
    for _ in range(2):  # a second click changes nothing
        operator.post("/admin/mail/deadletter/", {"action": "discard", "_selected_action": [dead_letter.pk]})

    dead_letter.refresh_from_db()
    assert dead_letter.status == "discarded" and dead_letter.handled_by == "ops" and dead_letter.handled_at
    message = Message.objects.get(pk=message_id)
    assert message.status == "failed" and message.last_error == "discarded by ops"
    assert [e.type for e in message.events.all()] == ["queued", "discarded"]
    assert LogEntry.objects.filter(object_id=str(dead_letter.pk), change_message="Discarded").count() == 1
