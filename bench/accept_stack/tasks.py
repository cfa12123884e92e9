"""The Celery app and its one task, on the bench's SQS queue (kombu's SQS transport). The task is
only ever queued here: the benchmark measures accepting, and no worker runs."""

import os
from urllib.parse import urlsplit

from celery import Celery

endpoint = urlsplit(os.environ["SQS_ENDPOINT_URL"])
queue_name = os.environ["SQS_QUEUE_NAME"]
app = Celery("accept_stack", broker=f"sqs://bench:bench@{endpoint.netloc}")
app.conf.update(
    broker_transport_options={
        "region": os.environ.get("AWS_REGION", "us-east-1"),
        "is_secure": False,
        # The queue's URL given, as a deployment with its queues made beforehand gives it: no
        # lookup, no creation (the API, too, publishes to a queue provisioned beforehand).
        "predefined_queues": {
            queue_name: {
                "url": os.environ["SQS_QUEUE_URL"],
                "access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
                "secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
            }
        },
    },
    task_default_queue=queue_name,
    task_serializer="json",
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="accept_stack.send_message")
def send_message(message: dict) -> None:
    raise NotImplementedError("the benchmark only queues: see bench/anymail_stack for a sending task")
