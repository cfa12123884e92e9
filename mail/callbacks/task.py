"""The callback task as it travels in SQS, on the callbacks' own queue:

    task name   "mail.deliver_callback"
    args        [delivery_id]
    SQS         DelaySeconds: the wait before this attempt (at most 900)

Everything else (the attempt number, the body) is in the Delivery row, which the task claims."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from mail import queues

TASK_NAME = "mail.deliver_callback"


@dataclass(frozen=True)
class CallbackTask:
    delivery_id: str
    delay_seconds: int = 0

    def to_publish(self) -> queues.TaskToPublish:
        return queues.TaskToPublish(
            key=self.delivery_id,
            name=TASK_NAME,
            args=[self.delivery_id],
            kwargs={},
            options={"queue": settings.CALLBACK_QUEUE_NAME, "delay_seconds": self.delay_seconds},
        )

    def publish(self) -> None:
        queues.publish(self.to_publish())

    @staticmethod
    def publish_many(tasks: list[CallbackTask]) -> dict[str, Exception]:
        """One SendMessageBatch per 10; the error of each task SQS did not take, by delivery id."""
        if not tasks:
            return {}
        try:
            return queues.publish_in_batches([task.to_publish() for task in tasks])
        except Exception as exc:  # before any batch went out (no queue URL, no connection)
            return {task.delivery_id: exc for task in tasks}
