"""Where an accept's CPU goes (issue 21): POST /api/v1/messages driven in this process through
Django's WSGI handler — what gunicorn calls — against PostgreSQL, fauxqs as SQS and Redis for the
rate limit (as production has it), logs at INFO (into /dev/null here). Not a test: the
measurement behind each change to the accept path in docs/benchmarks.md.

    .venv/bin/python bench/accept_profile.py                   # 3 rounds of 2,000 accepts, about 2 minutes
    .venv/bin/python bench/accept_profile.py --requests 500 --top 40

The figure is the CPU time of this process (time.process_time: PostgreSQL, Redis and fauxqs are
other processes, waiting for them costs nothing) per accept, the median of --repeats rounds.
Areas are measured in the same rounds by the same clock around the function that enters each
(its outermost call only), not by a profiler: a profiler timed by the CPU clock costs more than
the small calls it times and shifts every share. The first table's areas partition the request;
those "across areas" (database statements, SQS calls, logging, DRF's field copies) lie inside
several of them. Then one round under cProfile (its default clock) lists the functions with the
most time of their own, for what the areas do not say. Every answer must be 202."""

from __future__ import annotations

import argparse
import cProfile
import inspect
import io
import logging
import os
import pstats
import sys
import time
from collections import defaultdict

from accept import message_body  # the same message bench/accept.py sends
from common import DEFAULT_DATABASE_URL, local_servers, machine, manage, now

URL = "/api/v1/messages"


class AreaClock:
    """CPU seconds spent inside each wrapped function, counting only its outermost call (a
    nested serializer's get_fields inside its parent's counts once)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.depth: dict[str, int] = defaultdict(int)

    def wrap(self, owner, name: str, area: str) -> None:
        found = inspect.getattr_static(owner, name)
        original = found.fget if isinstance(found, property) else getattr(owner, name)
        clock = self

        def timed(*args, **kwargs):
            clock.depth[area] += 1
            started = time.process_time() if clock.depth[area] == 1 else None
            try:
                return original(*args, **kwargs)
            finally:
                clock.depth[area] -= 1
                if started is not None:
                    clock.seconds[area] += time.process_time() - started

        if isinstance(found, property):
            timed = property(timed)
        elif isinstance(found, staticmethod):
            timed = staticmethod(timed)
        setattr(owner, name, timed)

    def reset(self) -> None:
        self.seconds.clear()


def install_clocks(clock: AreaClock) -> tuple[list[str], list[str]]:
    """Wrap each area's entry point; (the areas that partition a request, those across them)."""
    import botocore.client
    from django.db.backends import utils as db_utils
    from rest_framework import request as drf_request
    from rest_framework import response as drf_response
    from rest_framework import serializers as drf_serializers
    from rest_framework import views as drf_views

    from mail import accept_flush, accept_sql, accepting
    from mail.api import auth, messages
    from mail.delivery_task import DeliveryTask

    partition = [
        ("authentication (API key)", auth.ApiKeyAuthentication, "authenticate"),
        ("scope check", auth.ScopeRequired, "has_permission"),
        ("rate limit (both charges)", auth, "charge"),
        ("body parsing (DRF, JSON)", drf_request.Request, "_load_data_and_files"),
        ("send context (templates)", messages, "send_context"),
        ("validation (serializer)", drf_serializers.BaseSerializer, "is_valid"),
        ("write + publish (mail/accepting.py)", messages.MessageCollectionView, "accept"),
        ("response rendering", drf_response.Response, "rendered_content"),
        (VIEW, drf_views.APIView, "dispatch"),
    ]
    across = [
        ("the message serializer's fields copied (get_fields)", messages.MessageCreateSerializer, "get_fields"),
        ("database statements (execute)", db_utils.CursorWrapper, "execute"),
        ("SQS calls (botocore)", botocore.client.BaseClient, "_make_api_call"),
        ("log records (Logger._log)", logging.Logger, "_log"),
        # Inside the write + publish row, by step (mail/accepting.py, mail/accept_flush.py).
        ("write + publish: the message and its task made (accepting._prepare)", accepting, "_prepare"),
        ("write + publish: suppressions and endpoints read (accept_sql.look)", accept_sql, "look"),
        ("write + publish: the rows written (accept_flush._record)", accept_flush, "_record"),
        ("write + publish: the tasks published (DeliveryTask.publish_many)", DeliveryTask, "publish_many"),
    ]
    for area, owner, name in partition + across:
        clock.wrap(owner, name, area)
    return [area for area, _, _ in partition if area != VIEW], [area for area, _, _ in across]


def install_middleware_clocks(clock: AreaClock) -> list[str]:
    """Wrap each middleware class's __call__ (before the handler builds the chain); their names
    in settings.MIDDLEWARE's order, outermost first."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    for path in settings.MIDDLEWARE:
        clock.wrap(import_string(path), "__call__", path)
    return list(settings.MIDDLEWARE)


VIEW = "view (DRF dispatch)"
# Where the profiler's wall clock counts waiting: psycopg's wait loop and send, the sockets' calls.
WAITS = {
    "wait",
    "_execute_send",
    "_exec_command",
    "<method 'recv' of '_socket.socket' objects>",
    "<method 'recv_into' of '_socket.socket' objects>",
    "<method 'sendall' of '_socket.socket' objects>",
}


def environ_for(body: bytes, key: str) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": URL,
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {key}",
        "HTTP_HOST": "127.0.0.1",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def post(application, body: bytes, key: str, report) -> None:
    statuses = []
    response = application(environ_for(body, key), lambda status, headers, exc_info=None: statuses.append(status))
    content = b"".join(response)
    response.close()  # request_finished: the database connection goes back to its pool
    if not statuses[0].startswith("202"):
        print(f"expected 202, got {statuses[0]}: {content[:500]!r}", file=report, flush=True)
        raise SystemExit(1)


def area_rows(seconds: dict[str, float], partition: list[str], total: float, count: int) -> list[tuple[str, float]]:
    rows = [(area, 1000 * seconds.get(area, 0.0) / count) for area in partition]
    view = 1000 * seconds.get(VIEW, 0.0) / count
    rows.append(
        ("DRF view, the rest (dispatch, negotiation, throttle and permission plumbing)", view - sum(ms for _, ms in rows))
    )
    rows.append(("middleware, URL routing, Django's handler", 1000 * total / count - view))
    return rows


def middleware_rows(seconds: dict[str, float], chain: list[str], total: float, count: int) -> list[tuple[str, float]]:
    """Each middleware's own CPU: its inclusive time less the next one's (the last: less the
    view's, URL routing included)."""
    inclusive = [1000 * seconds.get(path, 0.0) / count for path in chain] + [1000 * seconds.get(VIEW, 0.0) / count]
    rows = [("Django's WSGI handler (request, response)", 1000 * total / count - inclusive[0])]
    rows += [(path, inclusive[i] - inclusive[i + 1]) for i, path in enumerate(chain)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="accepts per round (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the median is reported (default 3)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--top", type=int, default=25, help="functions listed by own time")
    parser.add_argument("--save-profile", help="also write the cProfile round's stats here (pstats format)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="'' counts the rate limit in memory")
    args = parser.parse_args()

    with local_servers("fauxqs", args.database_url) as servers:
        env = {
            **servers.env,
            "DJANGO_SETTINGS_MODULE": "mailer_project.settings",
            "MAILER_MODE": "consumer",
            "LOG_LEVEL": "INFO",
            "REDIS_URL": args.redis_url,
            "API_RATE_LIMIT": "100000000/min",  # counted, never reached
        }
        manage(env, "provision_queues")
        key = manage(env, "create_api_key", "bench accept profile").strip()
        os.environ.update(env)
        # The log lines are formatted and written as in production, into /dev/null; the report
        # goes to the original stdout.
        sys.stdout.flush()
        sys.stderr.flush()
        report = os.fdopen(os.dup(1), "w")
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)

        import django

        django.setup()
        from django.core.handlers.wsgi import WSGIHandler

        clock = AreaClock()
        partition, across = install_clocks(clock)
        chain = install_middleware_clocks(clock)
        application = WSGIHandler()
        body = message_body()
        for _ in range(args.warmup):
            post(application, body, key, report)

        rounds = []
        for _ in range(args.repeats):
            clock.reset()
            started_cpu, started_wall = time.process_time(), time.perf_counter()
            for _ in range(args.requests):
                post(application, body, key, report)
            rounds.append((time.process_time() - started_cpu, time.perf_counter() - started_wall, dict(clock.seconds)))
        cpu, wall, seconds = sorted(rounds, key=lambda r: r[0])[len(rounds) // 2]

        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            post(application, body, key, report)
        profiler.disable()

        per = 1000 / args.requests
        print(f"# accept CPU profile, {now()}, {machine()}, load average {os.getloadavg()[0]:.2f}", file=report)
        print(f"# {servers.sqs_server}, PostgreSQL, rate limit in {'Redis' if args.redis_url else 'memory'}", file=report)
        print(
            f"\nCPU per accept: **{cpu * per:.2f} ms** (median of {args.repeats} rounds of {args.requests}: "
            f"{', '.join(f'{c * per:.2f}' for c, _, _ in rounds)} ms); wall {wall * per:.2f} ms, one request at a time",
            file=report,
        )
        print("\n| area | CPU ms per accept | share |\n|---|---|---|", file=report)
        for area, ms in area_rows(seconds, partition, cpu, args.requests):
            print(f"| {area} | {ms:.3f} | {ms / (cpu * per):.0%} |", file=report)
        print("\n| across areas | CPU ms per accept | share |\n|---|---|---|", file=report)
        for area in across:
            ms = seconds.get(area, 0.0) * per
            print(f"| {area} | {ms:.3f} | {ms / (cpu * per):.0%} |", file=report)
        print("\n| the middleware row, by middleware (own CPU) | ms per accept |\n|---|---|", file=report)
        for area, ms in middleware_rows(seconds, chain, cpu, args.requests):
            print(f"| {area} | {ms:.3f} |", file=report)
        print(
            f"\nTop {args.top} by own time (cProfile, one round, wall clock, the calls that wait for PostgreSQL, Redis or SQS left out):",
            file=report,
        )
        if args.save_profile:
            profiler.dump_stats(args.save_profile)
        stats = pstats.Stats(profiler, stream=report)
        for waiting in [entry for entry in stats.stats if entry[2] in WAITS]:
            del stats.stats[waiting]
        stats.sort_stats("tottime").print_stats(args.top)
        report.flush()


if __name__ == "__main__":
    main()
