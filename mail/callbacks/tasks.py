"""The callbacks' Celery task: the wire format is mail/callbacks/task.py's, the work delivering.py's."""

from celery import shared_task

from . import delivering
from .task import TASK_NAME


@shared_task(name=TASK_NAME)
def deliver_callback(delivery_id: str) -> None:
    delivering.run(str(delivery_id))
