"""The Celery worker `manage.py serve` starts: Celery's own worker (celery.apps.worker.Worker,
built as `celery worker` builds it), without Celery's command line.

`python -m celery ... worker` imports every one of Celery's subcommands before it parses its
arguments, their interactive shells among them (click-repl, prompt_toolkit, Pygments): about
11 MB in each of the processor's two workers, kept for nothing (docs/benchmarks.md, issue 21).
This takes the few options `serve` gives and hands them to the same Worker class, so the worker
runs exactly as `celery --app mailer_project --quiet worker ...` would.

    python -m gevent.monkey --module mailer_project.celery_worker --pool gevent --loglevel INFO
    python -m mailer_project.celery_worker --pool threads --loglevel INFO

The gevent pool needs gevent's patching before anything else is imported, which Celery's command
line does when it sees `--pool gevent`; here gevent's own runner does it (as for gunicorn's
gevent workers in mail/management/commands/serve.py), since importing this module imports the
Celery app, and with it Django's settings, boto3 and the rest (mailer_project/celery.py refuses
an unpatched gevent pool). A plain `celery -A mailer_project worker` works as before."""

import argparse
import sys

from celery import concurrency

from mailer_project.celery import app


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mailer_project.celery_worker", description=__doc__.splitlines()[0])
    # eventlet, which Celery's command line would patch for, is not installed (docs/operations.md).
    parser.add_argument("--pool", required=True, choices=("gevent", "prefork", "solo", "threads"))
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--concurrency", "-c", type=int, help="unset: WORKER_CONCURRENCY or the pool's (mailer_project/celery.py)"
    )
    parser.add_argument("--prefetch-multiplier", type=int, help="unset: CELERY_WORKER_PREFETCH_MULTIPLIER")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # As `celery worker` passes them: the pool as its class, and only the options given (an
    # option left out reads the app's configuration, as Celery's own unset options do).
    given = {"concurrency": args.concurrency, "prefetch_multiplier": args.prefetch_multiplier}
    worker = app.Worker(
        pool_cls=concurrency.get_implementation(args.pool),
        loglevel=args.loglevel,
        # No start banner, so what the worker writes is the JSON lines of settings.LOGGING.
        quiet=True,
        # SQS has no broadcast; these would only poll for nothing.
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
        **{name: value for name, value in given.items() if value is not None},
    )
    worker.start()
    return worker.exitcode


if __name__ == "__main__":
    sys.exit(main())
