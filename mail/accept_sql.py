"""The accept path's reads and writes said in SQL (mail/sql.py says how). What they decide is
mail/accept_flush.py's: a flush of concurrent accepts reads its recipients' suppressions and
whether any endpoint may want its events in one round trip, then writes its messages and their
first events in one more. Through the ORM the same work took six round trips (the suppressions;
BEGIN, two inserts, the endpoints' read, COMMIT), each query built afresh: a fifth of an accept's
CPU (docs/benchmarks.md, "Issue 21: accept CPU")."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connections

from .callbacks.models import Endpoint
from .models import Message, MessageEvent, Suppression
from .sql import AllRows, column, converted, inserted_fields, marks, prep, prep_many, quoted, run_together


@dataclass(frozen=True)
class Lookup:
    # The suppressions among the pairs asked about, by (team id, lower-cased address).
    suppressed: dict[tuple[int, str], Suppression]
    # An enabled callback endpoint belongs to one of the keys asked about: a superset of what
    # mail/callbacks/outbox.py record looks for, which then decides.
    listening: bool


def look(pairs: set[tuple[int, str]], key_ids: set[str]) -> Lookup:
    """What a flush reads before it writes, in one round trip: the suppressions among these (team
    id, lower-cased address) pairs, and whether an endpoint of these API keys may listen."""
    db = connections[DEFAULT_DB_ALIAS]
    statements, params = [], []
    if pairs:  # else no recipient to check (overridden, or a sandbox key's): the endpoints only
        teams, addresses = {team for team, _ in pairs}, {address for _, address in pairs}
        statements.append(AllRows(_suppressions_sql().format(teams=marks(len(teams)), addresses=marks(len(addresses)))))
        params += [*prep_many(db, Suppression, "team", teams), *prep_many(db, Suppression, "address", addresses)]
    statements.append(_listening_sql().format(keys=marks(len(key_ids))))
    params += [*prep_many(db, Endpoint, "api_key", key_ids), *prep(db, Endpoint, enabled=True)]
    with db.cursor() as cursor:
        answers = run_together(db, cursor, statements, params)
    names = _suppression_names()
    suppressed = {}
    for row in answers[0] if pairs else ():
        suppression = Suppression.from_db(db.alias, names, list(converted(db, Suppression, names, row).values()))
        if (pair := (suppression.team_id, suppression.address)) in pairs:
            suppressed[pair] = suppression
    return Lookup(suppressed, listening=bool(answers[-1][0]))


def write(messages: list[Message], events: list[MessageEvent]) -> None:
    """Insert the messages, then their events, all or none (mail/sql.py run_together): on
    PostgreSQL in one round trip. The events' ids are not read back (a flush that must record
    callbacks for them writes through the ORM)."""
    db = connections[DEFAULT_DB_ALIAS]
    message_fields, event_fields = inserted_fields(Message), inserted_fields(MessageEvent)
    params = [field.get_db_prep_save(field.pre_save(m, True), db) for m in messages for field in message_fields]
    params += [field.get_db_prep_save(field.pre_save(e, True), db) for e in events for field in event_fields]
    statements = [_insert_sql(Message, len(messages)), _insert_sql(MessageEvent, len(events))]
    with db.cursor() as cursor:
        run_together(db, cursor, statements, params)
    for saved in (*messages, *events):
        saved._state.adding, saved._state.db = False, db.alias


# --- the SQL, made once per process ----------------------------------------------------------


@cache
def _suppressions_sql() -> str:
    """With {teams} and {addresses} to fill with as many marks as there are values."""
    columns = ", ".join(quoted(field.column) for field in Suppression._meta.concrete_fields)
    return (
        f"SELECT {columns} FROM {quoted(Suppression._meta.db_table)} "
        f"WHERE {column(Suppression, 'team')} IN ({{teams}}) AND {column(Suppression, 'address')} IN ({{addresses}})"
    )


@cache
def _suppression_names() -> tuple[str, ...]:
    return tuple(field.attname for field in Suppression._meta.concrete_fields)


@cache
def _listening_sql() -> str:
    """With {keys} to fill with as many marks as there are keys."""
    endpoints = quoted(Endpoint._meta.db_table)
    return (
        f"SELECT EXISTS (SELECT 1 FROM {endpoints} WHERE {column(Endpoint, 'api_key')} IN ({{keys}}) "
        f"AND {column(Endpoint, 'enabled')} = %s)"
    )


def _insert_sql(model, rows: int) -> str:
    fields = inserted_fields(model)
    return f"{_insert_into(model)} {', '.join([_row(len(fields))] * rows)}"


@cache
def _insert_into(model) -> str:
    columns = ", ".join(quoted(field.column) for field in inserted_fields(model))
    return f"INSERT INTO {quoted(model._meta.db_table)} ({columns}) VALUES"


@cache
def _row(count: int) -> str:
    return f"({marks(count)})"
