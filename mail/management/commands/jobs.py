import logging
import threading

from django.core.management.base import BaseCommand

from . import drain_dlq, housekeeping

log = logging.getLogger(__name__)

# Each job is also a command of its own, with --once.
JOBS = {"drain_dlq": drain_dlq.run_forever, "housekeeping": housekeeping.run_forever}


def start(names: list[str]) -> list[threading.Thread]:
    """Each job in a daemon thread of its own (a greenlet in a gevent worker), started."""
    threads = [threading.Thread(target=JOBS[name], name=name, daemon=True) for name in dict.fromkeys(names)]
    for thread in threads:
        thread.start()
    return threads


def stopped(threads: list[threading.Thread]) -> list[str]:
    return [thread.name for thread in threads if not thread.is_alive()]


class Command(BaseCommand):
    help = (
        "Run several of the processor's background jobs in one process, each in a thread of its "
        "own, for those who run the worker their own way: `serve` runs the same jobs inside the "
        "callbacks' worker (WORKER_JOBS, mailer_project/worker_jobs.py) rather than in a Django "
        "process of their own (about 135 MB). Exits, for its supervisor to see, if a job stops."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="+", choices=sorted(JOBS), metavar="job", help=f"any of {', '.join(sorted(JOBS))}")

    def handle(self, *args, names, **options):
        threads = start(names)
        while not stopped(threads):
            threads[0].join(timeout=1)
        log.error("background job stopped: %s", ", ".join(stopped(threads)))
        raise SystemExit(1)
