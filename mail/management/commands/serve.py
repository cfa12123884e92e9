import logging
import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from mail.supervisor import Child, python_argv, supervisor_exec


# Command lines as option-value pairs, one pair a line (the formatter would put one word a line).
# fmt: off
def consumer_argv() -> list[str]:
    return python_argv(
        *server_model_argv(),
        "mailer_project.serving:application",
        "--bind", settings.BIND_ADDRESS,
        "--workers", str(settings.WEB_WORKERS),
        "--worker-connections", str(settings.WEB_CONNECTIONS),
        # A worker whose loop is stuck (CPU-bound past this) is restarted.
        "--timeout", "60",
        "--graceful-timeout", "30",
        "--keep-alive", "5",
        # gunicorn's own lines (access log included) as JSON, like the app's (settings.LOGGING); they
        # go through the root logger, so in a worker they reach CloudWatch too when it is on.
        "--log-config-json", str(settings.BASE_DIR / "mailer_project" / "gunicorn_logging.json"),
        # Unused, and it would be one path under $HOME shared by every gunicorn on the host.
        "--no-control-socket",
    )


def server_model_argv() -> list[str]:
    """How gunicorn starts and its worker class, by WEB_SERVER_MODEL; either worker answers
    gunicorn's own refusals (414, 431, ...) as JSON (mailer_project/gunicorn_worker.py)."""
    if settings.WEB_SERVER_MODEL == "gthread":
        return [
            "-m", "gunicorn",
            "--worker-class", "mailer_project.gunicorn_worker.JsonErrorsThreadWorker",
            "--threads", str(settings.WEB_THREADS),
        ]
    return [
        # gevent's own runner patches the standard library before gunicorn imports anything (its
        # logging configuration loads boto3, whose ssl must be the patched one in every worker).
        "-m", "gevent.monkey", "--module", "gunicorn",
        # Greenlets, not threads: a slow client holds one of WEB_CONNECTIONS, and its body has a
        # deadline (mailer_project/serving.py).
        "--worker-class", "mailer_project.gunicorn_worker.JsonErrorsGeventWorker",
    ]


def processor_argv(pool: str | None = None) -> list[str]:
    # Celery's worker without Celery's command line, which imports all of its subcommands and
    # their shells (mailer_project/celery_worker.py). The queue comes from the settings, the
    # concurrency from WORKER_CONCURRENCY or the pool (mailer_project/celery.py). The gevent pool
    # (WORKER_POOL unless given) needs the standard library patched before anything else is
    # imported: gevent's own runner does it, as for gunicorn's gevent workers above.
    pool = pool or settings.WORKER_POOL
    runner = ["-m", "gevent.monkey", "--module"] if pool == "gevent" else ["-m"]
    return python_argv(
        *runner, "mailer_project.celery_worker",
        "--pool", pool,
        "--loglevel", settings.LOG_LEVEL,
    )


# fmt: on


# Django's system checks ran in `serve` itself, before it handed over to the supervisor. A Celery
# worker would run them again at start (Celery's Django fixup), importing every URL, view and
# middleware of the API to check them: DRF, drf-spectacular, MongoDB's client, about 15 MB a worker
# kept for nothing (docs/benchmarks.md, issue 21).
CHECKED_BY_SERVE = {"CELERY_SKIP_CHECKS": "1"}


def children_for_mode(mode: str) -> list[Child]:
    children = []
    if mode in ("processor", "all"):
        children.append(Child("processor", processor_argv(), extra_env=CHECKED_BY_SERVE))
        # The callbacks' worker, a process of its own on its own queue: a slow or dead client
        # endpoint holds its greenlets, never the mail worker's (mailer_project/celery.py).
        # It also runs the dead-letter drainer and housekeeping, which mostly wait: greenlets
        # beside its callbacks rather than a Django process of their own (mailer_project/worker_jobs.py).
        callbacks_env = {**CHECKED_BY_SERVE, "WORKER_CONSUMES": "callbacks", "WORKER_JOBS": "drain_dlq,housekeeping"}
        if settings.WORKER_HEARTBEAT_FILE:
            # Its own file: the container's health check follows the mail worker's.
            callbacks_env["WORKER_HEARTBEAT_FILE"] = f"{settings.WORKER_HEARTBEAT_FILE}-callbacks"
        children.append(Child("callbacks", processor_argv(pool=callbacks_pool()), extra_env=callbacks_env))
    if mode in ("consumer", "all"):
        children.append(Child("consumer", consumer_argv()))
    return children


def callbacks_pool() -> str:
    """The callbacks' worker's pool: the mail worker's when it is one of greenlets or threads;
    threads when the mail worker forks (prefork). A callback is an HTTP request that mostly waits,
    and prefork would fork CALLBACK_WORKER_CONCURRENCY (16) processes of about 110 MB each for it."""
    return settings.WORKER_POOL if settings.WORKER_POOL in ("gevent", "threads") else "threads"


def shutdown_grace_seconds() -> int:
    """How long a stop waits for the children before killing them. A send in flight either ends
    within its claim's lease (longer than the provider's connect + read timeouts) or has lost its
    claim anyway; a little more covers recording it. The orchestrator's own stop timeout (ECS
    stopTimeout, compose stop_grace_period) must be longer still: tests/test_deploy.py checks."""
    return settings.DELIVERY_LEASE_SECONDS + 10


class Command(BaseCommand):
    help = "Run the service in MAILER_MODE: consumer (API under gunicorn), processor (Celery worker) or all."

    def handle(self, *args, **options):
        # The settings are read and checked here; the supervising is done by a process without
        # Django, which takes this one's place (the same pid, so a signal to `serve` reaches it).
        argv, env = supervisor_exec(
            children_for_mode(settings.MAILER_MODE), shutdown_grace_seconds(), settings.LOG_LEVEL, settings.LOG_FORMAT
        )
        logging.shutdown()  # what a handler still holds (CloudWatch's batch) is sent before the exec
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(argv[0], argv, env)
