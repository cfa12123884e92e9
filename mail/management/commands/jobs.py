import logging
import threading

from django.core.management.base import BaseCommand

from . import drain_dlq, housekeeping

log = logging.getLogger(__name__)

# Each job is also a command of its own, with --once.
JOBS = {"drain_dlq": drain_dlq.run_forever, "housekeeping": housekeeping.run_forever}


class Command(BaseCommand):
    help = (
        "Run several of the processor's background jobs in one process, each in a thread of its "
        "own: `serve` runs `jobs drain_dlq housekeeping` beside the worker, one Django process "
        "(about 100 MB) instead of one per job. Exits, for its supervisor to see, if a job stops."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="+", choices=sorted(JOBS), metavar="job", help=f"any of {', '.join(sorted(JOBS))}")

    def handle(self, *args, names, **options):
        threads = [threading.Thread(target=JOBS[name], name=name, daemon=True) for name in dict.fromkeys(names)]
        for thread in threads:
            thread.start()
        while all(thread.is_alive() for thread in threads):
            threads[0].join(timeout=1)
        stopped = [thread.name for thread in threads if not thread.is_alive()]
        log.error("background job stopped: %s", ", ".join(stopped))
        raise SystemExit(1)
