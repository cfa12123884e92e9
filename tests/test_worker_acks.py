"""The worker's acks (mailer_project.sqs_transport): deleted in batches off the event loop, and a
delete that fails costs only a redelivery, which the message's claim acks without sending again."""

import pytest

from .faults import SqsActionProxy
from .stack import accepted_per_message, mail_body
from .support import service_env, wait_until


@pytest.fixture
def worker_sqs_proxy():
    proxy = SqsActionProxy(service_env()["SQS_ENDPOINT_URL"])
    yield proxy
    proxy.close()


def queue_is_empty(stack) -> bool:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_acked_messages_are_deleted_with_delete_message_batch(make_stack, worker_sqs_proxy, simulator):
    stack = make_stack()
    ids = [stack.post(mail_body(f"n{n}")) for n in range(12)]

    stack.start_worker(SQS_ENDPOINT_URL=worker_sqs_proxy.url, WORKER_CONCURRENCY="8")
    for message_id in ids:
        stack.wait_for_status(message_id, "sent")
    wait_until(lambda: queue_is_empty(stack), timeout=30, what="every acked message to be deleted")

    assert worker_sqs_proxy.calls["DeleteMessage"] == 0
    assert 1 <= worker_sqs_proxy.calls["DeleteMessageBatch"] <= len(ids)
    assert accepted_per_message(simulator) == {message_id: 1 for message_id in ids}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_failed_delete_means_a_redelivery_that_sends_nothing(make_stack, worker_sqs_proxy, simulator):
    stack = make_stack()
    worker_sqs_proxy.fail("DeleteMessageBatch")  # SQS refuses every delete for now
    ids = [stack.post(mail_body(f"n{n}")) for n in range(3)]

    stack.start_worker(SQS_ENDPOINT_URL=worker_sqs_proxy.url)
    for message_id in ids:
        stack.wait_for_status(message_id, "sent")
    wait_until(lambda: worker_sqs_proxy.calls["DeleteMessageBatch"] >= 1, timeout=10, what="a delete to be tried")
    worker_sqs_proxy.fail("DeleteMessageBatch", after=10**6)  # SQS takes deletes again

    # Still in SQS, the messages come back after the visibility timeout (8 s here); their claims
    # say they were sent, so they are acked, and this time deleted.
    wait_until(lambda: queue_is_empty(stack), timeout=40, what="the redelivered messages to be acked and deleted")
    assert accepted_per_message(simulator) == {message_id: 1 for message_id in ids}
