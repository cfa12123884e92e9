"""The processor's background jobs (the dead-letter drainer, housekeeping) inside a Celery worker:
`serve` gives them to the callbacks' worker (WORKER_JOBS), where they mostly wait, instead of a
Django process of their own that cost about 135 MB for two loops that sleep (issue 21,
docs/benchmarks.md). They are the same loops `manage.py jobs` runs, with the same guarantees
(each is safe to kill at any point and to run on several hosts), in greenlets of the worker's
gevent pool process beside its callbacks, each with its own database connection.

As `manage.py jobs` exits when a job stops, so a worker whose job stopped stops (a warm shutdown,
as on SIGTERM), and its supervisor stops the rest, for the orchestrator to restart the task."""

import logging
import os
import signal

from celery import bootsteps
from django.conf import settings

from mail.management.commands import jobs

log = logging.getLogger(__name__)


class BackgroundJobs(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}
    CHECK_SECONDS = 5.0

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.threads = []
        self.timer_entry = None

    def start(self, worker):
        self.threads = jobs.start(settings.WORKER_JOBS)
        log.info("background jobs started: %s", ", ".join(thread.name for thread in self.threads))
        self.timer_entry = worker.timer.call_repeatedly(self.CHECK_SECONDS, self.check, priority=10)

    def check(self):
        if stopped := jobs.stopped(self.threads):
            log.error("background job stopped: %s; stopping the worker", ", ".join(stopped))
            self.timer_entry.cancel()
            os.kill(os.getpid(), signal.SIGTERM)

    def stop(self, worker):
        # The jobs are daemon threads: they end with the process, each safe to stop anywhere.
        if self.timer_entry is not None:
            self.timer_entry.cancel()
