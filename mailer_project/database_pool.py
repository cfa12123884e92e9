"""The health check of the database pool's connections, made where it can find something.

Django checks every pooled connection it is handed with a round trip (psycopg_pool's
`check_connection`, when CONN_HEALTH_CHECKS is on). A delivery takes a connection from the pool
twice (the claim, then the `sent` record, mail/claims.py) and a busy worker hands each of its
connections out many times a second, so that was a round trip per checkout, to a connection
that had answered milliseconds before (docs/benchmarks.md, "Issue 21: delivery"). Here the check
is made only for a connection not handed out within `idle_seconds`: one that has sat in the pool,
where a restarted server or a dropped link would have left it broken. A connection that breaks
within that moment fails its next statement, as any connection can fail mid-statement: the
claim's task is redelivered, the `sent` write waits the outage out (mail/claims.py)."""

from __future__ import annotations

import weakref
from time import monotonic

from psycopg_pool import ConnectionPool


class CheckWhenIdle:
    """psycopg_pool's `check` callable: ConnectionPool.check_connection, for a connection not
    handed out within the last `idle_seconds` (or never)."""

    def __init__(self, idle_seconds: float):
        self.idle_seconds = idle_seconds
        # When each connection was last handed out; forgotten with the connection. A connection
        # is handed to one thread at a time, and a single get or set needs no lock of ours (none
        # to be copied held into a forked pool process, either).
        self._handed_out: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __call__(self, conn) -> None:
        now = monotonic()
        last = self._handed_out.get(conn)
        if last is None or now - last > self.idle_seconds:
            ConnectionPool.check_connection(conn)  # raises for a broken one: the pool takes another
        self._handed_out[conn] = now
