"""The callbacks' part of /metrics (mail/metrics.py): attempts by outcome, the outbox's oldest
undelivered callback, and the callbacks' queues."""

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from mail import queues

from .models import Attempt, Delivery

OUTCOMES = ("succeeded", "retrying", "failed")


def families():
    attempts = CounterMetricFamily(
        "mailer_callback_attempts", "Requests to client endpoints by outcome (succeeded, retrying, failed).", labels=["outcome"]
    )
    found = dict(Attempt.objects.order_by().values_list("outcome").annotate(n=Count("id")))
    for outcome in OUTCOMES:
        attempts.add_metric([outcome], found.get(outcome, 0))
    yield attempts
    deliveries = GaugeMetricFamily("mailer_callbacks", "Callbacks in the outbox by status.", labels=["status"])
    by_status = dict(Delivery.objects.order_by().values_list("status").annotate(n=Count("id")))
    for status in Delivery.Status.values:
        deliveries.add_metric([status], by_status.get(status, 0))
    yield deliveries
    oldest = Delivery.objects.filter(status__in=(Delivery.Status.PENDING, Delivery.Status.DELIVERING)).aggregate(
        at=Min("created_at")
    )["at"]
    yield GaugeMetricFamily(
        "mailer_callback_outbox_oldest_seconds",
        "Age of the oldest callback not yet delivered nor given up (0 when none).",
        value=(timezone.now() - oldest).total_seconds() if oldest else 0,
    )
    depth = GaugeMetricFamily(
        "mailer_callback_queue_messages", "Messages in the callbacks' SQS queues by state.", labels=["queue", "state"]
    )
    for name, states in queues.depths((settings.CALLBACK_QUEUE_NAME, settings.CALLBACK_DLQ_NAME)).items():
        for state, n in (states or {}).items():
            depth.add_metric([name, state], n)
    yield depth
