"""What one POST /api/v1/messages costs (issues 10 and 21): two round trips to PostgreSQL (the
suppression list and the key's callback endpoints read together; the message and its first event
written together, all or none) and one SQS publish; the API key is read again only once
API_KEY_CACHE_SECONDS have passed. A regression here is a slower accept path; bench/accept.py
measures what it costs."""

import json
from unittest import mock

import pytest
from botocore.client import BaseClient
from django.db import DataError, connection

from mail import accept_sql
from mail.models import Message, MessageEvent

from .stack import mail_body

URL = "/api/v1/messages"


@pytest.fixture
def aws_calls():
    """(service, operation) of every AWS API call this process makes, in order."""
    calls = []
    make_api_call = BaseClient._make_api_call

    def counting(client, operation_name, api_params):
        calls.append((client.meta.service_model.service_name, operation_name))
        return make_api_call(client, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", counting):
        yield calls


@pytest.fixture
def statements():
    """(SQL, inside a transaction?) of every query Django sends (a round trip: the statements of
    one are joined by ";\n"), and how many commits."""
    seen = {"sql": [], "commits": 0}

    def recording(execute, sql, params, many, context):
        seen["sql"].append((sql, connection.in_atomic_block))
        return execute(sql, params, many, context)

    commit = connection.commit

    def counting_commit():
        seen["commits"] += 1
        return commit()

    with connection.execute_wrapper(recording), mock.patch.object(connection, "commit", counting_commit):
        yield seen


def post(client, body):
    return client.post(URL, data=json.dumps(body), content_type="application/json")


@pytest.mark.django_db(transaction=True)  # real commits, as in production (not one test-wide transaction)
def test_an_accept_is_one_transaction_and_one_sqs_publish(api_client, provisioned_queues, aws_calls, statements):
    # The first request of a process looks up the queue's URL once; the measured one is a later one.
    assert post(api_client, mail_body("warm-up")).status_code == 202
    aws_calls.clear()
    statements["sql"].clear()
    statements["commits"] = 0

    response = post(api_client, mail_body("measured"))

    assert response.status_code == 202, response.content
    assert aws_calls == [("sqs", "SendMessageBatch")]  # one entry: this message's task
    # Two queries, each one round trip of two statements.
    assert len(statements["sql"]) == 2, statements["sql"]
    (reads, _), (writes, writes_in_block) = ((sql.split(";\n"), in_block) for sql, in_block in statements["sql"])
    # The team's suppressions and whether one of the key's callback endpoints may listen (none
    # here: the outbox is not written). Not the key: the warm-up's read of it is remembered
    # (mail/verified_keys.py).
    assert [(read.split()[0], table_of(read)) for read in reads] == [
        ("SELECT", "mail_suppression"),
        ("SELECT", "callbacks_endpoint"),
    ]
    assert [write.split()[:3] for write in writes] == [
        ["INSERT", "INTO", '"mail_message"'],
        ["INSERT", "INTO", '"mail_messageevent"'],
    ]
    # One query outside a transaction block: PostgreSQL runs its statements as one transaction.
    assert writes_in_block is False and statements["commits"] == 0


def table_of(select: str) -> str:
    """The first table a SELECT reads (an EXISTS's inner one)."""
    return select.split(" FROM ")[1].split()[0].strip('"')


@pytest.mark.django_db(transaction=True)
def test_the_write_of_messages_and_their_events_is_all_or_none(api_key):
    """The two inserts go as one query: an event the database refuses keeps its message out too."""
    key, _ = api_key
    message = Message(
        api_key=key,
        team_id=key.profile.team_id,
        status=Message.Status.QUEUED,
        from_email="a@example.com",
        recipients="b@example.com",
        recipient_addresses=["b@example.com"],
        recipient_count=1,
    )
    refused = MessageEvent(message=message, type="x" * 1000)  # longer than the column takes

    with pytest.raises(DataError):
        accept_sql.write([message], [refused])

    assert not Message.objects.filter(pk=message.pk).exists()
