"""Prometheus metrics, read at scrape time from the database and SQS.

Why not counters in process memory: the service runs as several gunicorn workers and Celery
worker processes on several hosts (ECS tasks that come and go), and a counter in any one of them
says nothing about the others and dies with its task. Every fact counted here is already
recorded once, durably, by the process that caused it (a MessageEvent row per accept, retry,
failover, send and failure; a Message row per message), so any consumer answers /metrics with
the same, whole-service numbers, and one scrape target is enough. The counts are a GROUP BY over
indexed columns (migration 0002) and the latency window a range on an indexed column.

Counters count rows still in the database: should old messages ever be purged, a counter drops,
which Prometheus reads as a counter reset (rate() and increase() stay right)."""

from __future__ import annotations

import statistics
from datetime import timedelta

from django.db.models import Count, F
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from providers.circuit import State

from . import queues, routing
from .callbacks import metrics as callback_metrics
from .counted_events import EVENT_COUNTERS
from .models import Message, MessageEvent

LATENCY_WINDOW = timedelta(minutes=5)
LATENCY_PERCENTILES = (50, 90, 99)
# Enough for a percentile; more would make a scrape during a burst slow.
LATENCY_SAMPLE_LIMIT = 20_000


class DatabaseAndQueueCollector:
    def collect(self):
        yield from self.event_counters()
        yield self.messages_by_status()
        yield from self.send_latency()
        yield from self.queue_depth()
        yield from self.providers()
        yield from callback_metrics.families()

    @staticmethod
    def event_counters():
        counts: dict[tuple[str, str], int] = {}
        for row in MessageEvent.objects.order_by().values("type", "provider").annotate(n=Count("id")):
            counts[(row["type"], row["provider"])] = row["n"]
        for name, help_text, types, by_provider in EVENT_COUNTERS:
            family = CounterMetricFamily(name, help_text, labels=["provider"] if by_provider else [])
            if by_provider:
                totals: dict[str, int] = {}
                for (event_type, provider), n in counts.items():
                    if event_type in types:
                        totals[provider or "none"] = totals.get(provider or "none", 0) + n
                for provider, n in sorted(totals.items()):
                    family.add_metric([provider], n)
            else:
                family.add_metric([], sum(n for (event_type, _), n in counts.items() if event_type in types))
            yield family

    @staticmethod
    def messages_by_status():
        family = GaugeMetricFamily("mailer_messages", "Messages in the database by status.", labels=["status"])
        found = dict(Message.objects.order_by().values_list("status").annotate(n=Count("id")))
        for status in Message.Status.values:
            family.add_metric([status], found.get(status, 0))
        return family

    @staticmethod
    def send_latency():
        """Seconds from accepted (or from send_at, when scheduled) to a provider's acceptance, over
        the messages sent in the last LATENCY_WINDOW."""
        since = timezone.now() - LATENCY_WINDOW
        latencies = [
            latency.total_seconds()
            # A sandbox "send" takes no time anyone waits for: it would flatter the quantiles.
            for latency in Message.objects.filter(sent_at__gte=since, sandbox=False)
            .order_by("-sent_at")
            .annotate(latency=F("sent_at") - Coalesce("send_at", "created_at"))
            .values_list("latency", flat=True)[:LATENCY_SAMPLE_LIMIT]
            if latency is not None
        ]
        window = f"{int(LATENCY_WINDOW.total_seconds())}s"
        percentiles = GaugeMetricFamily(
            "mailer_send_latency_seconds",
            f"Accepted-to-sent time of the messages sent in the last {window}, by percentile.",
            # Not "quantile": Prometheus reserves that label for summaries.
            labels=["percentile"],
        )
        if len(latencies) >= 2:
            cuts = statistics.quantiles(latencies, n=100, method="inclusive")
            for p in LATENCY_PERCENTILES:
                percentiles.add_metric([str(p)], cuts[p - 1])
        elif latencies:
            for p in LATENCY_PERCENTILES:
                percentiles.add_metric([str(p)], latencies[0])
        yield percentiles
        yield GaugeMetricFamily(
            "mailer_send_latency_window_messages",
            f"Messages sent in the last {window} (the latency percentiles' sample).",
            value=len(latencies),
        )

    @staticmethod
    def queue_depth():
        depth = GaugeMetricFamily("mailer_queue_messages", "Messages in the SQS queues by state.", labels=["queue", "state"])
        up = GaugeMetricFamily("mailer_queue_up", "1 when SQS answered this scrape's GetQueueAttributes.", labels=["queue"])
        # One short attempt per queue: a scrape must answer well within Prometheus' timeout, and
        # an outage is a reading (up 0), not a failed scrape.
        for name, states in queues.depths().items():
            up.add_metric([name], 0 if states is None else 1)
            for state, n in (states or {}).items():
                depth.add_metric([name, state], n)
        yield depth
        yield up

    @staticmethod
    def providers():
        """Each configured provider's circuit (as the workers share it through Redis; without
        REDIS_URL, only this process's own view, which sends nothing) and whether the admin's
        switches let mail go to it. Alerts need both: a provider switched off keeps the circuit it
        had, since no send probes it (deploy/prometheus/alerts.yml)."""
        states = GaugeMetricFamily(
            "mailer_circuit_state", "1 for the state each provider's circuit is in.", labels=["provider", "state"]
        )
        enabled = GaugeMetricFamily(
            "mailer_provider_enabled", "1 when the admin's switches let mail go to the provider.", labels=["provider"]
        )
        order = routing.provider_order()
        for row in routing.provider_health()["providers"]:
            for state in State:
                states.add_metric([row["name"], state.value], int(row["circuit"] == state.value))
            enabled.add_metric([row["name"]], int(row["name"] in order))
        yield states
        yield enabled


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseAndQueueCollector())
    return generate_latest(registry)
