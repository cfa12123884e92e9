"""Finding a team's messages and suppressions, a page at a time.

A page is keyed on (created_at, id), newest first: `after` a position goes to older rows, `before`
to newer ones. Rows inserted meanwhile are newer than every position already handed out, so they
neither shift a later page nor repeat an earlier one (an offset would do both). Each filter has an
index that leads with the team (mail/models.py, Message.Meta and Suppression.Meta), so no page
reads the table; tests/test_search.py checks the plans on 100,000 rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

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
        queryset = queryset.filter(recipient_addresses__contains=[filters.recipient.lower()])
    if filters.tag:
        queryset = queryset.filter(tags__contains=[filters.tag])
    if filters.metadata:
        queryset = queryset.filter(metadata__contains=filters.metadata)
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
    table = queryset.model._meta.db_table
    return queryset.filter(
        RawSQL(
            f'("{table}"."created_at", "{table}"."id") {operator} (%s, %s)',
            (position.created_at, position.pk),
            output_field=BooleanField(),
        )
    )
