"""The Celery app. Its configuration lives in settings.py (CELERY_*), next to the rest."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer_project.settings")

app = Celery("mailer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["mail"])


@signals.worker_init.connect
def _use_predefined_queue(**_kwargs):
    # Before the worker's first connection: kombu must know the queue's URL, or it would create a
    # queue of its own without the redrive policy, and delete the messages it rejects from it.
    from django.conf import settings

    from mail import queues

    try:
        queues.use_predefined_queue()
    except Exception as exc:
        # Celery logs and ignores a signal handler's exceptions; SystemExit is the one it lets
        # through, and a worker must not start without its queue.
        raise SystemExit(
            f"The worker cannot find its SQS queue {settings.SQS_QUEUE_NAME!r} ({exc}); "
            "run `python manage.py provision_queues` first."
        ) from exc
