"""Erasure: a team asks for one person's data to be erased; once the job says done, nothing of
that team still holds the address, searched for in every table, every stored body in S3 and the
archive of rejected requests; another team's mail to the same person is untouched; and what is
written afterwards (a late provider event, its log lines) does not bring the address back."""

import base64
import json
import logging
import os
import uuid

import boto3
import mongomock
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from mail import keys
from mail.api import archive
from mail.callbacks.models import Delivery, Endpoint
from mail.models import DeadLetter, Erasure, Message, MessageEvent, Scope, Suppression, Team

from .support import sent_message
from .webhook_signing import SendGridSigner, sendgrid_body, sendgrid_event

URL = "/api/v1/erasures"


def client_for(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def mongo(settings):
    archive.ARCHIVE.reset(client_class=mongomock.MongoClient)
    settings.MONGODB_URI = "mongodb://archive.test:27017/mailer"
    yield archive.ARCHIVE.collection
    archive.ARCHIVE.reset()


@pytest.fixture
def signer(settings):
    signer = SendGridSigner()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key_b64
    return signer


def rows_mentioning(needle: str) -> list[tuple[str, str]]:
    """Every row of every table of ours whose text holds `needle`, in any case."""
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(
                f'SELECT row_to_json(t)::text FROM "{table}" t WHERE lower(row_to_json(t)::text) LIKE %s', [f"%{needle}%"]
            )
            found += [(table, row) for (row,) in cursor.fetchall()]
    return found


def s3_bodies_mentioning(needle: str) -> list[str]:
    s3 = boto3.client(
        "s3", endpoint_url=settings.S3_ENDPOINT_URL, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    keys_found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.S3_BUCKET):
        for item in page.get("Contents", []):
            if (
                needle
                in s3.get_object(Bucket=settings.S3_BUCKET, Key=item["Key"])["Body"].read().decode(errors="replace").lower()
            ):
                keys_found.append(item["Key"])
    return keys_found


def test_after_an_erasure_nothing_of_the_team_holds_the_address(db, provisioned_queues, mongo, signer, caplog):
    person = f"erase-{uuid.uuid4().hex[:8]}@example.com"
    team_a, team_b = Team.objects.create(name="a"), Team.objects.create(name="b")
    sender_key, sender = keys.create("sender", team_a)
    _, eraser = keys.create("privacy", team_a, scopes=[Scope.ERASURES_MANAGE])
    _, other_team = keys.create("other", team_b)
    mail = {"from": "shop@example.com", "subject": f"Hello {person}", "text": f"Dear {person}"}

    # Team A: mail waiting in the queue (to the person and Bob), a large one stored in S3, one sent
    # whose provider events and dead letter quote the address, a request rejected and archived.
    waiting = client_for(sender).post(
        "/api/v1/messages",
        {**mail, "to": [person.upper(), "bob@example.com"], "metadata": {"customer": person}, "tags": ["welcome"]},
        format="json",
    )
    attachment = {"filename": "big.bin", "content": base64.b64encode(os.urandom(400_000)).decode()}
    large = client_for(sender).post("/api/v1/messages", {**mail, "to": person, "attachments": [attachment]}, format="json")
    assert waiting.status_code == large.status_code == 202
    assert s3_bodies_mentioning(person)
    sent = sent_message(sender_key, recipients=f"{person}, bob@example.com")
    body = sendgrid_body(
        sendgrid_event(str(sent.pk), "bounce", email=person, reason=f"550 {person}: no such user", type="bounce")
    )
    assert (
        client_for(sender)
        .post("/webhooks/sendgrid", data=body, content_type="application/json", headers=signer.headers(body))
        .status_code
        == 200
    )
    assert Suppression.objects.filter(team=team_a, address=person).exists()
    DeadLetter.objects.create(
        sqs_message_id="dl-1", message=sent, task_args=[{"to": [person]}], raw_body=json.dumps({"to": person})
    )
    endpoint = Endpoint.objects.create(api_key=sender_key, url="https://hooks.example.com/mail", secret="encrypted")
    Delivery.objects.create(
        endpoint=endpoint, message=sent, event_id="evt-1", event_type="message.bounced", payload={"recipient": person}
    )
    assert client_for(sender).post("/api/v1/messages", {**mail, "to": person, "from": "nobody"}, format="json").status_code == 400
    assert mongo().count_documents({"body": {"$regex": person}}) == 1
    # Team B mailed the same person: not theirs to erase.
    kept = client_for(other_team).post("/api/v1/messages", {**mail, "to": person}, format="json").json()["id"]

    # Reading messages is not enough to erase; bad input is a 400.
    refused = client_for(sender).post(URL, {"email": person}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "insufficient_scope"
    for bad in ({"email": f"{person}\r\nBcc: x@example.com"}, {"email": "not an address"}, {"email": person, "why": "x"}, {}):
        assert client_for(eraser).post(URL, bad, format="json").status_code == 400, bad
    requested = client_for(eraser).post(URL, {"email": person.title(), "erase_suppression": True}, format="json")
    assert requested.status_code == 202 and requested.json()["status"] == "pending"
    job_url = requested["Location"]
    assert client_for(other_team).get(job_url).status_code == 403  # no erasure scope
    assert person not in json.dumps(requested.json()).lower()

    call_command("housekeeping", "--once")

    job = client_for(eraser).get(job_url).json()
    assert job["status"] == "done" and job["messages_erased"] == 3 and job["suppression_erased"] is True
    assert {row for row in Message.objects.values_list("status", flat=True).filter(team=team_a)} >= {"canceled", "bounced"}
    for table, row in rows_mentioning(person):
        assert kept in row, f"{table} still holds the address: {row}"
    assert [table for table, _ in rows_mentioning(person)] == ["mail_message"]  # team B's message
    assert s3_bodies_mentioning(person) == []
    assert mongo().count_documents({"body": {"$regex": person, "$options": "i"}}) == 0
    assert Erasure.objects.get().address == ""

    # A provider's late event for the erased message: recorded, without the address, and no log
    # line written about it quotes it.
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        late = sendgrid_body(sendgrid_event(str(sent.pk), "delivered", email=person, response=f"250 ok {person}"))
        answer = client_for(sender).post(
            "/webhooks/sendgrid", data=late, content_type="application/json", headers=signer.headers(late)
        )
    assert answer.status_code == 200 and MessageEvent.objects.filter(message=sent, type="delivered").exists()
    assert [table for table, _ in rows_mentioning(person)] == ["mail_message"]
    assert not [record for record in caplog.records if person in json.dumps(record.__dict__, default=str).lower()]
