"""What the service logs, from real processes: JSON lines with the message id, the API key's
prefix, the provider and the outcome; never a body, a subject, an API key or a provider's key;
and, with CLOUDWATCH_LOG_GROUP set, the same lines in CloudWatch Logs (moto's, on the embedded
server) from the API's gunicorn workers and from a prefork worker's pool processes."""

import json
import os
import uuid

import boto3
import pytest

from .stack import mail_body

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def logs_client(endpoint: str):
    return boto3.client("logs", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="t", aws_secret_access_key="t")


def cloudwatch_events(client, group: str) -> list[dict]:
    events = []
    for page in client.get_paginator("filter_log_events").paginate(logGroupName=group):
        events.extend(page["events"])
    return events


@pytest.fixture
def secrets():
    """Values that must never reach a log line, unique to this test."""
    token = uuid.uuid4().hex
    return {
        "SENDGRID_API_KEY": f"SG.sendgrid-secret-{token}",
        "MAILGUN_API_KEY": f"key-mailgun-secret-{token}",
        "SECRET_KEY": f"django-secret-{token}-{'x' * 40}",
        "METRICS_TOKEN": f"metrics-secret-{token}",
    }


def test_log_lines_reach_cloudwatch_with_their_fields_and_nothing_secret(make_stack, simulator, secrets):
    endpoint = os.environ["SQS_ENDPOINT_URL"]  # the embedded moto server serves CloudWatch Logs too
    client = logs_client(endpoint)
    group = f"/mailer-test/{uuid.uuid4().hex[:8]}"
    client.create_log_group(logGroupName=group)  # the deployment's, as in CloudFormation
    stack = make_stack(CLOUDWATCH_LOG_GROUP=group, AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=endpoint, **secrets)
    # prefork: the sends run in forked pool processes, which must ship their own lines.
    worker = stack.start_worker(WORKER_POOL="prefork", WORKER_CONCURRENCY="2")
    token = uuid.uuid4().hex
    body = mail_body(f"private subject {token}", text=f"private text {token}", html=f"<p>private html {token}</p>")
    simulator.behave("sendgrid", status=503, times=1)  # one retry, so a failed attempt is logged too
    message_id = stack.post(body)
    stack.wait_for_status(message_id, "sent")
    stack.stop()  # flushes what is still batched

    lines = [json.loads(event["message"]) for event in cloudwatch_events(client, group)]
    mine = [line for line in lines if line.get("message_id") == message_id]
    by_message = {line["message"]: line for line in mine}
    api_key = stack.headers["Authorization"].removeprefix("Bearer ")
    prefix, secret_part = api_key.split(".", 1)

    accepted = by_message["message accepted"]
    assert accepted["api_key_prefix"] == prefix and accepted["outcome"] == "accepted"
    assert accepted["level"] == "INFO" and accepted["logger"] == "mail.accepting" and accepted["time"]
    retry = by_message["send attempt failed"]
    assert retry["provider"] == "sendgrid" and retry["outcome"] == "retry_scheduled" and retry["status_code"] == 503
    sent = by_message["message sent"]
    assert sent["provider"] == "sendgrid" and sent["outcome"] == "sent"
    assert sent["pid"] != worker.process.pid, "the send ran in a forked pool process"
    streams = [s["logStreamName"] for s in client.describe_log_streams(logGroupName=group)["logStreams"]]
    assert any(stream.endswith(f"/{sent['pid']}") for stream in streams) and any(
        s.endswith(f"/{accepted['pid']}") for s in streams
    )

    forbidden = [api_key, secret_part, body["subject"], body["text"], body["html"], token, *secrets.values()]
    shipped = "\n".join(event["message"] for event in cloudwatch_events(client, group))
    printed = "\n".join(path.read_text(errors="replace") for path in stack.directory.glob("*.log"))
    assert "message accepted" in printed and "message sent" in printed  # stdout has them too
    for text in forbidden:
        assert text not in shipped, f"{text!r} reached CloudWatch"
        assert text not in printed, f"{text!r} was printed"
