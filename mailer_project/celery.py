"""The Celery app, and the worker's start-up and shut-down hooks. The configuration lives in
settings.py (CELERY_*), next to the rest; the task is mail/tasks.py."""

import logging
import os
import sys
from pathlib import Path

from celery import Celery, bootsteps, signals
from celery.backends.base import DisabledBackend
from django.conf import settings

from mail import queues
from mailer_project import sqs_transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailer_project.settings")

app = Celery("mailer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["mail", "mail.callbacks"])


# Sends in flight per worker when WORKER_CONCURRENCY and `-c` do not say: sends are I/O-bound, so
# greenlets or threads share one process (64 delivered the most, docs/benchmarks.md); prefork
# keeps Celery's own default, a process per core, where a process per send would be 64 processes.
THREAD_LIKE_CONCURRENCY = 64


def _pool_name(worker) -> str:
    pool = getattr(worker, "pool_cls", None)
    return str(getattr(pool, "__module__", pool)).rsplit(".", 1)[-1]


@signals.worker_init.connect
def _size_the_pool(sender=None, **_kwargs):
    # After Celery chose the size (`-c`, or a process per core) and before it builds the pool.
    if not getattr(sender, "options", {}).get("concurrency"):  # none given on the command line
        if settings.WORKER_CONSUMES == "callbacks":
            sender.concurrency = settings.CALLBACK_WORKER_CONCURRENCY
        elif settings.WORKER_CONCURRENCY:
            sender.concurrency = settings.WORKER_CONCURRENCY
        elif _pool_name(sender) in ("gevent", "eventlet", "thread", "threads"):
            sender.concurrency = THREAD_LIKE_CONCURRENCY
    # What the worker runs with, for the providers' connection pools (mail/runtime.py); `-c auto`
    # is still a word here (Celery resolves it later), and the pools keep their default then.
    if isinstance(sender.concurrency, int):
        sender.app.conf.worker_concurrency = sender.concurrency


@signals.worker_init.connect
def _refuse_unpatched_gevent(sender=None, **_kwargs):
    # The gevent pool without gevent's monkey-patching blocks on the first network call: the
    # worker says "ready" and delivers nothing. Celery patches only when the pool is named on its
    # command line (`celery worker --pool gevent`); `manage.py serve` runs its workers under
    # gevent's own runner (mailer_project/celery_worker.py); anything else that selects it must
    # not start. (Celery logs and ignores a signal handler's exceptions;
    # SystemExit is the one it lets through.)
    if _pool_name(sender) == "gevent":
        monkey = sys.modules.get("gevent.monkey")
        if monkey is None or not monkey.is_module_patched("socket"):
            raise SystemExit(
                "The gevent pool needs gevent's monkey-patching, which Celery applies only when the pool is "
                "named on its command line: run `celery -A mailer_project worker --pool gevent` or "
                "`python manage.py serve`; or choose --pool threads."
            )


@signals.worker_init.connect
def _use_predefined_queue(sender=None, **_kwargs):
    # Before the worker's first connection: kombu must know the URL of each queue it consumes, or
    # it would create a queue of its own without the redrive policy, and delete the messages it
    # rejects from it. A worker consumes one queue: the mail's, or with WORKER_CONSUMES=callbacks
    # the callbacks' (a process of its own, so a dead client endpoint never holds a mail's slot).
    own = settings.CALLBACK_QUEUE_NAME if settings.WORKER_CONSUMES == "callbacks" else settings.SQS_QUEUE_NAME
    if sender is not None and not getattr(sender, "options", {}).get("queues"):  # no --queues given
        sender.app.amqp.queues.select([own])
    for name in list(sender.app.amqp.queues.consume_from) if sender is not None else [own]:
        try:
            queues.use_predefined_queue(name)
        except Exception as exc:
            raise SystemExit(
                f"The worker cannot find its SQS queue {name!r} ({exc}); run `python manage.py provision_queues` first."
            ) from exc


@signals.worker_init.connect
def _share_the_disabled_result_backend(sender=None, **_kwargs):
    # No result backend is configured (results are ignored): Celery's DisabledBackend, which it
    # keeps per thread as it is not marked thread-safe. Under gevent a thread is a greenlet, and
    # each task runs in a new one, so every task built its own from the configuration: a tenth of
    # a worker's CPU at gevent × 64 (docs/benchmarks.md, "Issue 21: delivery"). It keeps no state,
    # so the tasks share the one built here (a prefork pool's children inherit it).
    backend = sender.app.backend if sender is not None else None
    if isinstance(backend, DisabledBackend):
        for task in sender.app.tasks.values():
            task.backend = backend


class Heartbeat(bootsteps.StartStopStep):
    """Touches WORKER_HEARTBEAT_FILE every few seconds from the worker's own timer, so the
    container's health check (docker/healthcheck.py) can tell a worker whose event loop runs from
    one that is wedged. SQS has no broadcast, so `celery inspect ping` cannot do this."""

    requires = {"celery.worker.components:Timer"}
    INTERVAL_SECONDS = 10.0

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.path = Path(settings.WORKER_HEARTBEAT_FILE) if settings.WORKER_HEARTBEAT_FILE else None
        self.timer_entry = None

    def start(self, worker):
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.touch()
            self.timer_entry = worker.timer.call_repeatedly(self.INTERVAL_SECONDS, self.touch, priority=10)

    def stop(self, worker):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
        if self.path:
            self.path.unlink(missing_ok=True)

    def touch(self):
        self.path.touch()


app.steps["worker"].add(Heartbeat)


@signals.worker_init.connect
def _run_background_jobs(sender=None, **_kwargs):
    # Before the worker builds its steps. By name, so that only a worker given jobs imports them
    # (the drainer's and housekeeping's modules, MongoDB's client among them).
    if settings.WORKER_JOBS and sender is not None:
        sender.app.steps["worker"].add("mailer_project.worker_jobs:BackgroundJobs")


@signals.worker_shutting_down.connect
def _stop_receiving(**_kwargs):
    sqs_transport.stop_receiving()


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _flush_log_handlers(**_kwargs):
    # A prefork pool's children leave through os._exit, past the atexit hook that would flush
    # buffered handlers (CloudWatch's batches): flush them while the process still can.
    for handler in logging.getLogger().handlers:
        handler.flush()
