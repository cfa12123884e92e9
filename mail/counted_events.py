"""The events /metrics counts (mail/metrics.py) and the admin's overview shows (mail/overview.py),
so the two agree. A module of its own, without Prometheus's client: the admin's modules are
imported in every process that sets Django up, the workers too, and there the overview would
otherwise bring mail/metrics.py and prometheus_client along (docs/benchmarks.md, issue 21)."""

from __future__ import annotations

from .models import MessageEvent

# Counters: (metric name, help, event types counted, labelled by provider?)
EVENT_COUNTERS = [
    (
        "mailer_messages_accepted",
        "Messages accepted by the API (202).",
        (MessageEvent.Type.QUEUED, MessageEvent.Type.SCHEDULED),
        False,
    ),
    ("mailer_messages_sent", "Messages a provider accepted, by provider.", (MessageEvent.Type.SENT,), True),
    (
        "mailer_messages_failed",
        "Messages failed with every provider exhausted, by the last provider tried.",
        (MessageEvent.Type.FAILED,),
        True,
    ),
    (
        "mailer_send_retries",
        "Transient failures retried on the same provider, by provider.",
        (MessageEvent.Type.RETRY_SCHEDULED,),
        True,
    ),
    ("mailer_failovers", "Hand-overs to the next provider, by the provider given up on.", (MessageEvent.Type.FAILOVER,), True),
    ("mailer_dead_lettered", "Messages whose task reached the dead-letter queue.", (MessageEvent.Type.DEAD_LETTERED,), False),
    (
        "mailer_ambiguous_attempts",
        "Claims taken over from a worker that died mid-attempt (mail/ambiguity.py).",
        (MessageEvent.Type.AMBIGUOUS,),
        False,
    ),
    (
        "mailer_resent_after_ambiguity",
        "Ambiguous attempts no provider reported within AMBIGUOUS_GRACE_SECONDS, sent again.",
        (MessageEvent.Type.RESENT,),
        False,
    ),
]
