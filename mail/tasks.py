"""Thin Celery wrappers over services: they take ids and plain data, nothing else."""

from celery import Task, shared_task
from django.conf import settings

from providers.base import TransientError

from . import services


class SqsDelayedRetryTask(Task):
    """Celery's retry with the wait held by SQS (DelaySeconds), not by the worker.

    Celery would turn the countdown into an ETA that the worker keeps in memory; past the
    visibility timeout SQS hands the message to another worker too and it runs twice. The wait
    itself is decided by services.retry_delay and travels on the exception."""

    def retry(self, args=None, kwargs=None, exc=None, throw=True, eta=None, countdown=None, max_retries=None, **options):
        options["delay_seconds"] = int(getattr(exc, "retry_in", None) or countdown or 0)
        request_args = list(args if args is not None else self.request.args)
        # The same provider again: the one that failed, which is not the task's own when the
        # task's provider was skipped (its circuit open) and the next one was used instead.
        failed_provider = getattr(exc, "provider", None)
        if failed_provider:
            request_args[2:] = [failed_provider]
        args = request_args
        # A retry is the next step of the delivery, and carries the same options as any publish.
        kwargs = {**(kwargs if kwargs is not None else self.request.kwargs or {})}
        kwargs["step"] = kwargs.get("step", 0) + 1
        kwargs["recheck"] = False
        options.update(services.delivery_task_options(request_args[0], request_args[2] if len(request_args) > 2 else None))
        # countdown=0 is falsy to Celery: no ETA is set.
        return super().retry(args, kwargs, exc, throw, eta=None, countdown=0, max_retries=max_retries, **options)


@shared_task(
    bind=True,
    base=SqsDelayedRetryTask,
    name=services.DELIVER_TASK,
    autoretry_for=(TransientError,),
    max_retries=settings.DELIVERY_MAX_RETRIES,
    # Expected outcome, not a worker error: logged without a traceback, still not acked.
    throws=(services.DeliveryFailed,),
)
def deliver(
    self, message_id: str, payload: dict, provider: str | None = None, step: int = 0, recheck: bool = False, only: bool = False
) -> None:
    services.deliver_message(message_id, payload, provider, retries_done=self.request.retries, step=step, recheck=recheck, only=only)
