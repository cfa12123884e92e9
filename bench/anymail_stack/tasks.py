"""The Celery app and its one task: send a message with Django's send_mail (anymail underneath)."""

import os
from urllib.parse import urlsplit

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "anymail_stack.settings")
django.setup()

from django.core.mail import send_mail  # noqa: E402

endpoint = urlsplit(os.environ["SQS_ENDPOINT_URL"])
app = Celery("anymail_stack", broker=f"sqs://bench:bench@{endpoint.netloc}")
app.conf.update(
    broker_transport_options={
        "region": os.environ.get("AWS_REGION", "us-east-1"),
        "is_secure": False,
        # Long polls as Mailer's worker makes them, so the broker is not what differs.
        "wait_time_seconds": 4,
        "polling_interval": 0.1,
    },
    task_default_queue=os.environ["SQS_QUEUE_NAME"],
    task_serializer="json",
    task_ignore_result=True,
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="anymail_stack.send")
def send(recipient: str, subject: str, text: str) -> None:
    send_mail(subject, text, None, [recipient])
