"""Scheduled sending (send_at) and canceling."""

import json
from datetime import timedelta

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from mail import keys
from mail.models import Message, Team

from .stack import mail_body
from .support import wait_until

URL = "/api/v1/messages"


def body(send_at):
    return {"from": "a@example.com", "to": "b@example.com", "subject": "later", "text": "t", "send_at": send_at.isoformat()}


def post(client, data):
    return client.post(URL, data=json.dumps(data), content_type="application/json")


@pytest.fixture(autouse=True)
def queues_ready(provisioned_queues):
    return provisioned_queues


def test_a_message_far_ahead_is_held_in_the_database(api_client):
    response = post(api_client, body(timezone.now() + timedelta(hours=2)))
    assert response.status_code == 202 and response.json()["status"] == "scheduled"
    message = Message.objects.get()
    assert message.status == "scheduled" and message.scheduled_payload["subject"] == "later"
    assert [e.type for e in message.events.all()] == ["scheduled"]


def test_a_due_scheduled_message_is_released_once(api_client, capsys):
    post(api_client, body(timezone.now() + timedelta(hours=2)))
    Message.objects.update(send_at=timezone.now() + timedelta(minutes=10))  # now within SQS's delay
    call_command("housekeeping", "--once")
    call_command("housekeeping", "--once")
    released = [line for line in capsys.readouterr().out.splitlines() if "scheduled message(s) released" in line]
    assert released == ["1 scheduled message(s) released", "0 scheduled message(s) released"]
    message = Message.objects.get()
    assert message.status == "queued" and message.scheduled_payload is None
    assert [e.type for e in message.events.all()] == ["scheduled", "released"]


def test_cancel_a_scheduled_message_then_too_late(api_client):
    message_id = post(api_client, body(timezone.now() + timedelta(hours=2))).json()["id"]
    canceled = api_client.delete(f"{URL}/{message_id}")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert [e["type"] for e in canceled.json()["events"]] == ["scheduled", "canceled"]
    again = api_client.delete(f"{URL}/{message_id}")
    assert again.status_code == 409 and again.json()["error"]["type"] == "not_cancelable"
    Message.objects.update(send_at=timezone.now())
    call_command("housekeeping", "--once")
    assert Message.objects.get().status == "canceled"


def test_a_key_cannot_cancel_another_teams_message(api_client, db):
    message_id = post(api_client, body(timezone.now() + timedelta(hours=2))).json()["id"]
    _, other = keys.create("someone else", Team.objects.create(name="another team"))
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert stranger.delete(f"{URL}/{message_id}").status_code == 404
    assert Message.objects.get().status == "scheduled"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_near_send_at_waits_in_sqs_and_is_sent_on_time(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    send_at = timezone.now() + timedelta(seconds=4)
    message_id = stack.post(mail_body("soon", send_at=send_at.isoformat()))
    assert stack.counts()["MessagesDelayed"] == 1
    message = stack.wait_for_status(message_id, "sent")
    assert parse_datetime(message["sent_at"]) >= send_at
    assert parse_datetime(message["send_at"]) == send_at


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_canceled_message_in_the_queue_is_never_sent(make_stack, simulator):
    stack = make_stack()
    stack.start_worker()
    message_id = stack.post(mail_body("never", send_at=(timezone.now() + timedelta(seconds=3)).isoformat()))
    response = requests.delete(f"{stack.api_url}{URL}/{message_id}", headers=stack.headers, timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    wait_until(stack.queue_is_empty, timeout=30, what="its task to be taken and acked")
    assert simulator.requests() == []
    assert stack.message(message_id)["status"] == "canceled"
