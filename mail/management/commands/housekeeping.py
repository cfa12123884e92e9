import logging
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from mail import accepting, erasure, retention, status, sweeper
from mail.api import idempotency
from mail.api.archive import ARCHIVE
from mail.callbacks import outbox

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 5


class Command(BaseCommand):
    help = (
        "The processor's periodic jobs: queue the scheduled messages whose send_at is within SQS's "
        "15-minute delay, delete expired Idempotency-Key records and Mailgun webhook tokens too old "
        "to be replayed, settle messages whose task is gone (mail/sweeper.py), forget bodies and messages "
        "past their retention (mail/retention.py) and carry out erasure requests (mail/erasure.py), a "
        f"bounded batch at a time. Runs every {INTERVAL_SECONDS} s until stopped; --once runs them once. Safe to "
        "run on several hosts: each message is released by one conditional update."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run each job once, then exit")

    def handle(self, *args, once=False, **options):
        if once:
            for count, what in run_once():
                self.stdout.write(f"{count} {what}")
            return
        run_forever()


# Each job on its own: one that fails (MongoDB away for an erasure, say) must not stop the others.
JOBS = (
    (accepting.release_scheduled, "scheduled message(s) released"),
    (outbox.release_due, "callback(s) due released to their queue"),
    (idempotency.purge_expired, "expired Idempotency-Key record(s) deleted"),
    (status.forget_old_webhook_tokens, "webhook token(s) too old to replay deleted"),
    (sweeper.sweep, "stale message(s) settled (mail/sweeper.py)"),
    (retention.forget_old_bodies, "dead letter body(ies) past BODY_RETENTION_DAYS forgotten"),
    (retention.delete_old_messages, "message(s) past MESSAGE_RETENTION_DAYS deleted"),
    (lambda: erasure.work(ARCHIVE.erase_mentions), "message(s) erased at their team's request"),
)


def run_once() -> list[tuple[int, str]]:
    """Run every job once; raise the first failure after all have had their turn."""
    done, failures = [], []
    for job, what in JOBS:
        try:
            done.append((job(), what))
        except Exception as exc:
            log.exception("a housekeeping job failed: %s", what)
            failures.append(exc)
    if failures:
        raise failures[0]
    return done


def run_forever() -> None:
    while True:
        # Outside a request or a task nothing else drops a connection the database has closed.
        close_old_connections()
        try:
            for count, what in run_once():
                if count:
                    log.info("%d %s", count, what)
        except Exception:
            # Logged job by job; the database away for a while: keep going and try again.
            log.warning("housekeeping: a job failed; retrying in %d s", INTERVAL_SECONDS)
        time.sleep(INTERVAL_SECONDS)
