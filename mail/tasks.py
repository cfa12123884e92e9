"""The Celery task: the wire format is DeliveryTask's, the work mail/delivery.py's."""

from celery import shared_task

from . import delivery
from .delivery_task import TASK_NAME, DeliveryTask
from .exceptions import DeliveryFailed


# DeliveryFailed is an expected outcome, not a worker error: logged without a traceback, and the
# task is still not acked (the redrive policy dead-letters it).
@shared_task(bind=True, name=TASK_NAME, throws=(DeliveryFailed,))
def deliver(self, *args, **kwargs) -> None:
    delivery.run(DeliveryTask.received(list(args), kwargs, self.request.retries or 0))
