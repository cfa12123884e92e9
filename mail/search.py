"""Finding a team's messages and suppressions, a page at a time.

A page is keyed on (created_at, id), newest first: `after` a position goes to older rows, `before`
to newer ones. Rows inserted meanwhile are newer than every position already handed out, so they
neither shift a later page nor repeat an earlier one (an offset would do both). Each filter has an
index that leads with the team (mail/models.py, Message.Meta and Suppression.Meta), so no page
reads the table; tests/test_search.py checks the plans on 100,000 rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connections
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from .models import Message, Suppression


@dataclass(frozen=True)
class Position:
    """Where a page ends: a row's created_at and primary key."""

    created_at: datetime
    pk: object


@dataclass(frozen=True)
class Page:
    rows: list
    #: More rows beyond this page in the direction it was read.
    has_more: bool


@dataclass(frozen=True)
class MessageFilters:
    status: str | None = None
    recipient: str | None = None  # exact, any case
    tag: str | None = None
    metadata: dict = field(default_factory=dict)  # every key given, with exactly that value
    provider: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    sent_after: datetime | None = None
    sent_before: datetime | None = None


@dataclass(frozen=True)
class SuppressionFilters:
    reason: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def messages(team_id: int, filters: MessageFilters) -> QuerySet:
    queryset = Message.objects.filter(team_id=team_id)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.recipient:
        queryset = _holding(queryset, "recipient_addresses", filters.recipient.lower())
    if filters.tag:
        queryset = _holding(queryset, "tags", filters.tag)
    if filters.metadata:
        queryset = _with_metadata(queryset, filters.metadata)
    if filters.provider:
        queryset = queryset.filter(provider=filters.provider)
    return _created_range(queryset, filters.created_after, filters.created_before).filter(
        **({"sent_at__gte": filters.sent_after} if filters.sent_after else {}),
        **({"sent_at__lt": filters.sent_before} if filters.sent_before else {}),
    )


def suppressions(team_id: int, filters: SuppressionFilters) -> QuerySet:
    queryset = Suppression.objects.filter(team_id=team_id)
    if filters.reason:
        queryset = queryset.filter(reason=filters.reason)
    return _created_range(queryset, filters.created_after, filters.created_before)


def _holding(queryset: QuerySet, column: str, value: str) -> QuerySet:
    """Rows whose JSON list `column` holds `value`: on PostgreSQL a containment (`@>`) its GIN
    index answers (migration 0008); on SQLite, the local run's, a scan of the list."""
    if connections[queryset.db].vendor == "postgresql":
        return queryset.filter(**{f"{column}__contains": [value]})
    table = queryset.model._meta.db_table
    return queryset.filter(
        RawSQL(f'EXISTS (SELECT 1 FROM json_each("{table}"."{column}") WHERE value = %s)', (value,), output_field=BooleanField())
    )


def _with_metadata(queryset: QuerySet, wanted: dict) -> QuerySet:
    if connections[queryset.db].vendor == "postgresql":
        return queryset.filter(metadata__contains=wanted)
    table = queryset.model._meta.db_table
    for key, value in wanted.items():
        # A key is 1-64 of A-Z a-z 0-9 _ . - (mail/api/serializers.py): quoted, it is one path step.
        queryset = queryset.filter(
            RawSQL(f'json_extract("{table}"."metadata", %s) = %s', (f'$."{key}"', value), output_field=BooleanField())
        )
    return queryset


def _created_range(queryset: QuerySet, after: datetime | None, before: datetime | None) -> QuerySet:
    if after:
        queryset = queryset.filter(created_at__gte=after)
    if before:
        queryset = queryset.filter(created_at__lt=before)
    return queryset


def page(queryset: QuerySet, limit: int, after: Position | None = None, before: Position | None = None) -> Page:
    """Up to `limit` rows newest first: the newest, or those older than `after`, or the `limit`
    newer than `before` nearest to it."""
    rows = list(page_query(queryset, limit, after, before))
    ordered = rows[:limit][::-1] if before is not None else rows[:limit]
    return Page(ordered, len(rows) > limit)


def page_query(queryset: QuerySet, limit: int, after: Position | None = None, before: Position | None = None) -> QuerySet:
    """The one query a page costs: a row more than `limit`, to know whether there are more (read
    towards the newer end when paging `before`)."""
    if before is not None:
        return _beyond(queryset, ">", before).order_by("created_at", "pk")[: limit + 1]
    if after is not None:
        queryset = _beyond(queryset, "<", after)
    return queryset.order_by("-created_at", "-pk")[: limit + 1]


def _beyond(queryset: QuerySet, operator: str, position: Position) -> QuerySet:
    # A row comparison, which PostgreSQL reads as one range of the (team, ..., created_at, id)
    # index; the equivalent OR of two conditions it would not.
    meta, connection = queryset.model._meta, connections[queryset.db]
    # As each column stores them (SQLite keeps a UUID as hex text, a time as UTC text).
    values = (
        meta.get_field("created_at").get_db_prep_value(position.created_at, connection),
        meta.pk.get_db_prep_value(position.pk, connection),
    )
    table = meta.db_table
    return queryset.filter(
        RawSQL(f'("{table}"."created_at", "{table}"."id") {operator} (%s, %s)', values, output_field=BooleanField())
    )
