"""The delivery path's two busiest writes, the claim and the `sent` record, said in SQL. What they
do is mail/claims.py's; this module only writes it out, where the ORM built each query afresh for
every message: that building was most of a worker's CPU (docs/benchmarks.md, "Issue 21:
delivery"). The SQL is made once per process (mail/sql.py says how), and the `sent` record's
statements go to PostgreSQL in one round trip."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connections

from .callbacks.models import Endpoint
from .models import Message, MessageEvent
from .sql import column, converted, inserted_fields, marks, prep, prep_many, prep_pk, quoted, run_together
from .status import PROVIDER_EVENT_TYPES

# What a claim reads back: mail.claims.Claim's fields.
CLAIM_FIELDS = ("status", "step", "attempts", "lease_expires_at", "last_error", "ambiguous_since", "sandbox")
# What the `sent` write sets.
SENT_FIELDS = (
    "status",
    "provider",
    "provider_message_id",
    "lease_expires_at",
    "ambiguous_since",
    "last_error",
    "sent_at",
    "updated_at",
)


def claim(message_id: str, step: int, now: datetime, lease_until: datetime) -> dict | None:
    """Move the message `queued → sending` at this step with a lease, the attempts counted, in one
    conditional UPDATE; the row as it is then (CLAIM_FIELDS), or None when it was not queued at
    this step or an earlier one (mail/claims.py then reads why)."""
    db = connections[DEFAULT_DB_ALIAS]
    params = [
        *prep(db, Message, status=Message.Status.SENDING, step=step, lease_expires_at=lease_until, updated_at=now),
        prep_pk(db, Message, message_id),
        *prep(db, Message, status=Message.Status.QUEUED, step=step),
    ]
    with db.cursor() as cursor:
        cursor.execute(_claim_sql(db.vendor), params)
        row = cursor.fetchone()
    return converted(db, Message, CLAIM_FIELDS, row) if row is not None else None


@dataclass(frozen=True)
class SentWrite:
    held: bool  # the claim was still this worker's
    event: MessageEvent  # the `sent` event, saved
    early_events: bool  # the sending provider's events came before this write: status.catch_up has work
    listening: bool  # an enabled callback endpoint of the message's key may want the event


def write_sent(message_id: str, token: int, sent: dict, event: MessageEvent, not_yet_sent: tuple[str, ...]) -> SentWrite:
    """Inside the caller's transaction: the `sent` fields written (where the claim `token` is still
    held; else wherever the status is one of `not_yet_sent`), the event inserted, and what else the
    caller must do in the same transaction. The last two answers are read after the row's lock was
    taken, so a provider's event committed meanwhile (its webhook locks the row first,
    mail/status.py) is seen here or sees `sent` there."""
    db = connections[DEFAULT_DB_ALIAS]
    message_pk = prep_pk(db, Message, message_id)
    values = [Message._meta.get_field(name).get_db_prep_save(sent[name], db) for name in SENT_FIELDS]
    event_values = [field.get_db_prep_save(field.pre_save(event, True), db) for field in inserted_fields(MessageEvent)]
    params = [
        # held: the usual case, one statement
        *values,
        message_pk,
        *prep(db, Message, status=Message.Status.SENDING, attempts=token),
        # else whatever became of it (matches nothing once the first one wrote `sent`)
        *values,
        message_pk,
        *prep_many(db, Message, "status", not_yet_sent),
        # the event
        *event_values,
        # what else: early provider events, a listening endpoint
        message_pk,
        message_pk,
        *prep_many(db, MessageEvent, "type", PROVIDER_EVENT_TYPES),
        message_pk,
        *prep(db, Endpoint, enabled=True),
    ]
    statements = _sent_sql(db.vendor, len(not_yet_sent))
    with db.cursor() as cursor:
        held, _fallback, event_row, facts = run_together(db, cursor, statements, params)
    event.pk = converted(db, MessageEvent, ("id",), event_row)["id"]
    event._state.adding, event._state.db = False, db.alias
    return SentWrite(held=bool(held), event=event, early_events=bool(facts[0]), listening=bool(facts[1]))


# --- the SQL, made once per process ----------------------------------------------------------


@cache
def _claim_sql(vendor: str) -> str:
    table, col = quoted(Message._meta.db_table), lambda name: column(Message, name)
    returning = ", ".join(col(name) for name in CLAIM_FIELDS)
    return (
        f"UPDATE {table} SET {col('status')} = %s, {col('step')} = %s, {col('lease_expires_at')} = %s, "
        f"{col('attempts')} = {col('attempts')} + 1, {col('updated_at')} = %s "
        f"WHERE {col('id')} = %s AND {col('status')} = %s AND {col('step')} <= %s RETURNING {returning}"
    )


@cache
def _sent_sql(vendor: str, not_yet_sent: int) -> list[str]:
    message, col = quoted(Message._meta.db_table), lambda name: column(Message, name)
    events, event_col = quoted(MessageEvent._meta.db_table), lambda name: column(MessageEvent, name)
    endpoints, endpoint_col = quoted(Endpoint._meta.db_table), lambda name: column(Endpoint, name)
    assignments = ", ".join(f"{col(name)} = %s" for name in SENT_FIELDS)
    inserted = ", ".join(quoted(field.column) for field in inserted_fields(MessageEvent))
    the_message = f"(SELECT m.{{}} FROM {message} m WHERE m.{col('id')} = %s)"
    return [
        f"UPDATE {message} SET {assignments} WHERE {col('id')} = %s AND {col('status')} = %s AND {col('attempts')} = %s",
        f"UPDATE {message} SET {assignments} WHERE {col('id')} = %s AND {col('status')} IN ({marks(not_yet_sent)})",
        f"INSERT INTO {events} ({inserted}) VALUES ({marks(len(inserted_fields(MessageEvent)))}) RETURNING {event_col('id')}",
        # As status.catch_up reads them: the events of the provider the message now names.
        f"SELECT EXISTS (SELECT 1 FROM {events} e WHERE e.{event_col('message')} = %s "
        f"AND e.{event_col('provider')} = {the_message.format(col('provider'))} "
        f"AND e.{event_col('type')} IN ({marks(len(PROVIDER_EVENT_TYPES))})), "
        # A superset of what callbacks.outbox.record looks for, which then decides.
        f"EXISTS (SELECT 1 FROM {endpoints} ep WHERE ep.{endpoint_col('api_key')} = "
        f"{the_message.format(col('api_key'))} AND ep.{endpoint_col('enabled')} = %s)",
    ]
