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
    # queue of its own without the redrive policy.
    from mail import queues

    queues.use_predefined_queue()
