"""What the admin's overview page shows, read where it is kept: the last day's accepted, sent and
failed messages by hour and provider (from the events, aggregated in the database), the queues'
depths (SQS, mail/queues.py) and each provider's circuit (mail/routing.py).

Each series is one GROUP BY over a bounded range of an index (type, created_at; migration 0006),
never a loop over rows. The event types counted are mail/counted_events.py's, so the page and /metrics
cannot count different things under the same name."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count
from django.db.models.functions import TruncHour
from django.utils import timezone

from . import queues, routing
from .counted_events import EVENT_COUNTERS
from .models import MessageEvent

log = logging.getLogger(__name__)

HOURS = 24
_TYPES = {name: types for name, _, types, _ in EVENT_COUNTERS}
ACCEPTED_TYPES = _TYPES["mailer_messages_accepted"]
SENT_TYPES = _TYPES["mailer_messages_sent"]
FAILED_TYPES = _TYPES["mailer_messages_failed"]
# An event recorded without a provider (a failure before any provider was tried) is counted here.
NO_PROVIDER = "none"


@dataclass(frozen=True)
class Activity:
    """Counts per hour, oldest hour first; the last hour is the current one, so far."""

    hours: list[datetime]
    accepted: list[int]
    # provider → {"sent": [...], "failed": [...]}
    by_provider: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def since(self) -> datetime:
        return self.hours[0]


def activity(now: datetime | None = None) -> Activity:
    """The last HOURS hours (the current one included) of accepted, sent and failed messages:
    three queries, one per series."""
    current_hour = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    hours = [current_hour - timedelta(hours=HOURS - 1 - n) for n in range(HOURS)]
    slot = {hour: n for n, hour in enumerate(hours)}

    accepted = [0] * HOURS
    for hour, _, n in _hourly(ACCEPTED_TYPES, hours, by_provider=False):
        accepted[slot[hour]] += n

    providers = list(settings.MAIL_PROVIDERS)
    series: dict[str, dict[str, list[int]]] = {}
    for name, types in (("sent", SENT_TYPES), ("failed", FAILED_TYPES)):
        for hour, provider, n in _hourly(types, hours, by_provider=True):
            provider = provider or NO_PROVIDER
            if provider not in providers:
                providers.append(provider)  # one no longer configured still had traffic
            series.setdefault(provider, {}).setdefault(name, [0] * HOURS)[slot[hour]] += n
    by_provider = {p: {name: series.get(p, {}).get(name, [0] * HOURS) for name in ("sent", "failed")} for p in providers}
    return Activity(hours=hours, accepted=accepted, by_provider=by_provider)


def _hourly(types, hours: list[datetime], by_provider: bool):
    """(hour, provider, count) rows of these event types in these hours, counted by the database."""
    columns = ["hour", "provider"] if by_provider else ["hour"]
    rows = (
        MessageEvent.objects.filter(type__in=types, created_at__gte=hours[0], created_at__lt=hours[-1] + timedelta(hours=1))
        .order_by()
        .annotate(hour=TruncHour("created_at", tzinfo=timezone.get_current_timezone()))
        .values(*columns)
        .annotate(n=Count("id"))
    )
    for row in rows:
        yield row["hour"], row.get("provider", ""), row["n"]


def queue_depths() -> dict[str, dict[str, int] | None]:
    """Each queue's messages by state, None for a queue SQS did not answer about."""
    return queues.depths()


def circuits() -> dict | None:
    """Each provider's circuit (routing.provider_health), or None when it cannot be read."""
    try:
        return routing.provider_health()
    except Exception:
        log.warning("circuit states unavailable for the overview", exc_info=True)
        return None
