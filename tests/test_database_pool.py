"""The database pool checks a connection with a round trip only when it has sat idle
(mailer_project/database_pool.py): against the real PostgreSQL, whose server ends connections
under the pool's feet here as a restart would."""

import time

import psycopg
import pytest
import requests
from django.db import connection

from mailer_project.database_pool import CheckWhenIdle

from .stack import mail_body
from .support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def own_connection():
    params = connection.get_connection_params()
    return psycopg.connect(**{**params, "autocommit": True})


def end_from_elsewhere(conn) -> None:
    """The server ends this connection, as a restart or a dropped link would."""
    with own_connection() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [conn.info.backend_pid])
    time.sleep(0.05)  # the server's end reaches the client's socket


def test_the_pool_django_builds_uses_the_idle_check():
    assert connection.vendor == "postgresql"
    assert isinstance(connection.pool._check, CheckWhenIdle)


def test_a_connection_handed_out_moments_ago_is_not_checked_and_an_idle_one_is():
    check = CheckWhenIdle(idle_seconds=0.3)
    with own_connection() as conn:
        check(conn)  # never handed out before: checked, and fine
        end_from_elsewhere(conn)
        check(conn)  # handed out moments ago: no round trip, so nothing notices
        time.sleep(0.4)
        with pytest.raises(psycopg.OperationalError):
            check(conn)  # idle past the bound: checked, and found broken


def test_connections_ended_while_idle_are_replaced_before_use():
    check = connection.pool._check
    bound, check.idle_seconds = check.idle_seconds, 0.2
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        connection.close()  # back to the pool
        # The server ends every connection of the pool, as a restart would.
        with own_connection() as other:
            other.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        time.sleep(0.3)  # idle past the bound
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    finally:
        check.idle_seconds = bound


@pytest.mark.slow
def test_a_workers_sends_in_flight_are_not_capped_by_its_database_connections(make_stack, simulator):
    # A pool of two connections and eight sends at once, each taking SendGrid three seconds: a
    # delivery holds no connection while it waits for the provider, so all eight are in flight
    # together. (A transaction opened for no rows after the claim held one through the send, and
    # a worker sent DATABASE_POOL_SIZE messages at a time.)
    # The read timeout well above the three seconds: a send timed out on a loaded machine would
    # leave the simulator's count before the others joined it.
    stack = make_stack(DATABASE_POOL_SIZE="2", SQS_VISIBILITY_TIMEOUT="10", PROVIDER_READ_TIMEOUT="6", DELIVERY_LEASE_SECONDS="8")
    simulator.behave("sendgrid", latency_ms=3000)
    stack.start_worker(WORKER_CONCURRENCY="8", DATABASE_POOL_SIZE="2")
    response = requests.post(
        f"{stack.api_url}/api/v1/messages/batch",
        json=[mail_body(f"at once {n}", to=f"c{n}@example.com") for n in range(8)],
        headers=stack.headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text

    def in_flight() -> int:
        return sum(1 for request in simulator.requests("sendgrid") if request["state"] == "in_flight")

    wait_until(lambda: in_flight() == 8, timeout=20, what="eight sends in flight at once")
