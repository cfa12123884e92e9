"""Concurrent accepts in one API worker share one look at the suppression lists, one transaction
and one SendMessageBatch (mail/coalescing.py, mail/accept_flush.py), and each request still hears
only about its own messages: 202 for what SQS took, 503 or a 207 item for what it refused, 422 for
a suppressed recipient, and nothing kept of those."""

import threading

import pytest
import requests
from django.db import DatabaseError

from mail import accept_flush, accepting, queues
from mail.api.serializers import MessageCreateSerializer
from mail.models import Message

from .stack import mail_body, queued_message_ids

MESSAGES = "/api/v1/messages"
BATCH = "/api/v1/messages/batch"


def refused_by_sqs(sqs_body: str) -> bool:
    """SQS refuses the tasks of messages whose subject begins with 'refuse'."""
    return queues.read_celery_message(sqs_body).args[1]["subject"].startswith("refuse")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_coalesced_publish_that_sqs_partly_refuses_answers_each_request_for_its_own(make_stack, sqs_proxy):
    # One gevent worker, whose first accept waits up to a second for the others to join it.
    stack = make_stack(SQS_ENDPOINT_URL=sqs_proxy.url, WEB_WORKERS="1", ACCEPT_COALESCE_WINDOW_SECONDS="1")
    sqs_proxy.refuse_entries(refused_by_sqs)
    added = requests.post(f"{stack.api_url}/api/v1/suppressions", json={"address": "gone@example.com"}, headers=stack.headers)
    assert added.status_code == 201, added.text
    requests_to_send = {
        "keep 1": (MESSAGES, mail_body("keep 1")),
        "refuse 1": (MESSAGES, mail_body("refuse 1")),
        "keep 2": (MESSAGES, mail_body("keep 2")),
        "refuse 2": (MESSAGES, mail_body("refuse 2")),
        "batch": (BATCH, [mail_body("keep 3"), mail_body("refuse 3")]),
        "suppressed": (MESSAGES, mail_body("keep, but to a suppressed address", to="Gone@example.com")),
    }
    answers: dict[str, requests.Response] = {}
    start = threading.Barrier(len(requests_to_send))

    def send(name: str, path: str, body) -> None:
        start.wait()
        answers[name] = requests.post(f"{stack.api_url}{path}", json=body, headers=stack.headers, timeout=60)

    threads = [threading.Thread(target=send, args=(name, *request)) for name, request in requests_to_send.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # The six messages of the five requests SQS was asked to take went in one call.
    assert sqs_proxy.batch_sizes == [6]
    assert sqs_proxy.calls["SendMessage"] == 0
    for name in ("keep 1", "keep 2"):
        assert answers[name].status_code == 202, answers[name].text
    for name in ("refuse 1", "refuse 2"):
        assert answers[name].status_code == 503, answers[name].text
        assert answers[name].json()["error"]["type"] == "queue_unavailable"
    assert answers["batch"].status_code == 207, answers["batch"].text
    kept_from_batch, refused_from_batch = answers["batch"].json()["data"]
    assert kept_from_batch["status"] == "queued"
    assert refused_from_batch["error"]["type"] == "queue_unavailable"
    assert answers["suppressed"].status_code == 422, answers["suppressed"].text
    assert answers["suppressed"].json()["error"]["type"] == "recipient_suppressed"

    # What each client was told is what exists: the refused and the suppressed left no row and no task behind.
    accepted = sorted([answers["keep 1"].json()["id"], answers["keep 2"].json()["id"], kept_from_batch["id"]])
    assert sorted(str(pk) for pk in Message.objects.values_list("pk", flat=True)) == accepted
    assert sorted(Message.objects.values_list("subject", flat=True)) == ["keep 1", "keep 2", "keep 3"]
    assert sorted(queued_message_ids(stack.sqs, stack.queue_url)) == accepted


@pytest.mark.django_db(transaction=True)
def test_a_request_whose_rows_the_database_refuses_costs_no_other_request_of_its_flush(api_key, empty_queues, sqs):
    # Validation keeps such rows out of the API; here one is made by hand (a NUL, which
    # PostgreSQL refuses in text) to show what the shared transaction does when one fails.
    def prepared(subject: str) -> accept_flush.Request:
        serializer = MessageCreateSerializer(data=mail_body(subject), context={"templates": None})
        assert serializer.is_valid(), serializer.errors
        return accept_flush.Request([accepting._prepare(api_key[0], serializer.validated_data)], in_batch=False)

    good, bad, also_good = prepared("good"), prepared("bad"), prepared("also good")
    bad.acceptances[0].message.subject = "b\x00d"

    outcomes = accept_flush.flush([good, bad, also_good])

    assert outcomes[0] == {} and outcomes[2] == {}
    assert isinstance(outcomes[1], DatabaseError)
    assert sorted(Message.objects.values_list("subject", flat=True)) == ["also good", "good"]
    written = sorted(str(r.acceptances[0].message.id) for r in (good, also_good))
    assert sorted(queued_message_ids(sqs, empty_queues.queue_url)) == written


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_requests_waiting_for_a_flush_hold_no_database_connection_its_leader_needs(make_stack):
    # A pool of two connections. The first request (its key already cached, so it has touched no
    # database) leads and waits a second for company; three requests with an Idempotency-Key
    # join it, each having written its key's record first. Were they to keep their connections
    # while they wait, the leader would wait for the pool as they wait for it, until the pool's
    # 10 s timeout, and answer 503.
    stack = make_stack(WEB_WORKERS="1", DATABASE_POOL_SIZE="2", ACCEPT_COALESCE_WINDOW_SECONDS="1")
    stack.post(mail_body("caches the key"))
    answers: dict[str, requests.Response] = {}

    def send(name: str, headers: dict) -> None:
        answers[name] = requests.post(
            f"{stack.api_url}{MESSAGES}", json=mail_body(name), headers={**stack.headers, **headers}, timeout=60
        )

    leader = threading.Thread(target=send, args=("leader", {}))
    leader.start()
    joiners = [threading.Thread(target=send, args=(f"joiner {n}", {"Idempotency-Key": f"joiner-{n}"})) for n in range(3)]
    for thread in joiners:
        thread.start()
    for thread in (leader, *joiners):
        thread.join(timeout=60)

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "leader": 202,
        "joiner 0": 202,
        "joiner 1": 202,
        "joiner 2": 202,
    }, {name: answer.text for name, answer in answers.items() if answer.status_code != 202}
