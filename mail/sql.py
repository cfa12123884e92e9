"""What the hot paths' hand-written SQL shares (mail/delivery_sql.py, mail/accept_sql.py): names
quoted from the models' own tables and columns, values through the fields' own conversions both
ways, and several statements sent as one. Each module makes its SQL once per process; the ORM
built each query afresh per message, and that building was most of the CPU of a delivery and of
an accept (docs/benchmarks.md, issue 21). Runs on PostgreSQL and on SQLite (3.35 or later, for
RETURNING) alike."""

from __future__ import annotations

from functools import cache

from django.db import DEFAULT_DB_ALIAS, connections, transaction


def run_together(db, cursor, statements: list[str], params: list) -> list:
    """Each statement's answer: its row count (an UPDATE or INSERT), its first row (a SELECT or a
    RETURNING of one row) or all its rows (an AllRows). On PostgreSQL in one round trip:
    its simple query protocol takes them together, each after the one before with its own
    snapshot, and outside a transaction block as one implicit transaction (all or none). The
    parameters are merged into the text by the client, as for every query Django sends through
    psycopg (its client-side cursors). SQLite, in-process, takes them one by one, in a transaction
    (or a savepoint of the caller's), so they are all or none there too."""
    answers = []
    if db.vendor == "postgresql":
        cursor.execute(";\n".join(statements), params)
        for n, statement in enumerate(statements):
            if n:
                cursor.nextset()
            answers.append(_answer(cursor, statement))
        return answers
    start = 0
    with transaction.atomic(using=db.alias):
        for statement in statements:
            count = statement.count("%s")
            cursor.execute(statement, params[start : start + count])
            start += count
            answers.append(_answer(cursor, statement))
    return answers


class AllRows(str):
    """A statement run_together answers with all its rows."""


def _answer(cursor, statement: str):
    if isinstance(statement, AllRows):
        return cursor.fetchall()
    if statement.startswith("SELECT") or " RETURNING " in statement:
        return cursor.fetchone()
    return cursor.rowcount


def quoted(name: str) -> str:
    return connections[DEFAULT_DB_ALIAS].ops.quote_name(name)


def column(model, name: str) -> str:
    return quoted(model._meta.get_field(name).column)


@cache
def inserted_fields(model) -> tuple:
    """The columns an INSERT of the model names: all but a primary key the database numbers."""
    return tuple(field for field in model._meta.concrete_fields if not (field.primary_key and field.db_returning))


def marks(count: int) -> str:
    return ", ".join(["%s"] * count)


def prep(db, model, **values) -> list:
    return [model._meta.get_field(name).get_db_prep_save(value, db) for name, value in values.items()]


def prep_many(db, model, name: str, values) -> list:
    field = model._meta.get_field(name)
    return [field.get_db_prep_save(value, db) for value in values]


def prep_pk(db, model, value) -> object:
    return model._meta.pk.get_db_prep_value(model._meta.pk.to_python(value), db)


def converted(db, model, names: tuple[str, ...], row) -> dict:
    """A row as the ORM would have read it (SQLite's text dates and integer booleans)."""
    values = {}
    for name, value in zip(names, row, strict=True):
        col = model._meta.get_field(name).cached_col
        for converter in db.ops.get_db_converters(col) + col.get_db_converters(db):
            value = converter(value, col, db)
        values[name] = value
    return values
