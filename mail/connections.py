"""Giving a pooled database connection back between steps, so that waiting holds none.

A delivery waits on slow I/O between its database steps (an S3 read, the provider's hundred
milliseconds or more, a provider's log API), and an accept may wait for another request's
coalesced flush (mail/coalescing.py): holding a connection through such a wait would cap a
worker's sends in flight, or empty the API's pool under the very leader it waits for, at
DATABASE_POOL_SIZE. The next statement takes a connection again."""

from django.db import connection


def let_go_of_connection() -> None:
    """Hand this thread's connection back to the pool. Without a pool the connection is kept, as
    reopening it would cost more than it saves; inside a transaction (a test's, say) it stays."""
    if "pool" in connection.settings_dict.get("OPTIONS", {}) and not connection.in_atomic_block:
        connection.close()
