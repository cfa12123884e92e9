"""Thin Celery wrappers over services: they take ids and plain data, nothing else."""

from celery import shared_task

from . import services


@shared_task(name=services.DELIVER_TASK)
def deliver(message_id: str, payload: dict) -> None:
    services.deliver_message(message_id, payload)
