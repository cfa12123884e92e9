import logging
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from mail import dead_letters

log = logging.getLogger(__name__)


def run_forever() -> None:
    while True:
        # Outside a request or a task nothing else drops a connection the database has closed.
        close_old_connections()
        try:
            dead_letters.drain_once(wait_seconds=10)  # a long poll: returns at once when there is work
        except Exception:
            # SQS or the database away for a while: keep the drainer alive and try again.
            log.exception("draining the dead-letter queue failed; retrying in 10 s")
            time.sleep(10)


class Command(BaseCommand):
    help = (
        "Move messages from the dead-letter queue into DeadLetter rows (shown in the admin). Runs "
        "until stopped; --once drains what is there and exits. Safe to kill at any point and to "
        "run on several hosts: a message is deleted from the DLQ only after it is recorded, and "
        "recording it again finds the same row."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="drain what is in the DLQ now, then exit")

    def handle(self, *args, once=False, **options):
        if once:
            self.stdout.write(f"{dead_letters.drain_once(wait_seconds=1)} dead letter(s) recorded")
            return
        run_forever()
