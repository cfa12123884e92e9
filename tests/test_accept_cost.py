"""What one POST /api/v1/messages costs (issue 10): one database transaction that writes the
message and its first event, one SQS publish, and two reads (the suppression list, the key's
callback endpoints); the API key is read again only once API_KEY_CACHE_SECONDS have passed. A regression here is a slower accept path; bench/accept.py measures what it costs."""

import json
from unittest import mock

import pytest
from botocore.client import BaseClient
from django.db import connection

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
    """(SQL, inside a transaction?) of every statement Django sends, and how many commits."""
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
    writes = [
        (sql.split()[0], sql.split()[2].strip('"'), in_transaction)
        for sql, in_transaction in statements["sql"]
        if not sql.startswith("SELECT")
    ]
    assert writes == [("INSERT", "mail_message", True), ("INSERT", "mail_messageevent", True)]
    assert statements["commits"] == 1
    reads = [sql.split(" FROM ")[1].split()[0].strip('"') for sql, _ in statements["sql"] if sql.startswith("SELECT")]
    # The team's suppressions; the key's callback endpoints (none here: the outbox writes nothing,
    # mail/callbacks/outbox.py). Not the key: the warm-up's read of it is remembered
    # (mail/verified_keys.py).
    assert reads == ["mail_suppression", "callbacks_endpoint"]
