"""Which provider a message goes to, and when: the order (MAIL_PROVIDERS under the admin's
switches), the circuit breakers that skip a provider known to be down (providers/circuit.py),
the next provider after one gives up, and the waits between retries.

The functions here answer questions; mail/delivery.py turns the answers into a decision."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone

from providers.base import MessageRejected, OutboundMessage, ProviderLevelError, SendResult, TransientError
from providers.circuit import Admission, Outcome, State

from .models import MessageEvent, ProviderSetting
from .runtime import RUNTIME

# A half-open circuit is being probed; its verdict may come long before the probe's lease ends.
HALF_OPEN_RECHECK_SECONDS = 5


def provider_order() -> list[str]:
    """The enabled providers, first choice first: the admin's switches over MAIL_PROVIDERS,
    read at most PROVIDER_SETTINGS_CACHE_SECONDS ago, so a switch applies without a restart."""
    return RUNTIME.provider_order(_read_switches)


def _read_switches() -> list[str]:
    switches = list(ProviderSetting.objects.all())
    switched = {switch.name for switch in switches}
    return [s.name for s in switches if s.enabled] + [name for name in settings.MAIL_PROVIDERS if name not in switched]


def provider_after(name: str) -> str | None:
    order = provider_order()
    position = order.index(name) if name in order else len(order)
    return order[position + 1] if position + 1 < len(order) else None


def retry_delay(retries_done: int, retry_after: float | None = None) -> int:
    """Seconds before the next attempt: exponential backoff with equal jitter (never zero, so
    retries of many messages spread out), or Retry-After when longer; at most SQS's delay."""
    ceiling = settings.DELIVERY_RETRY_BASE_SECONDS * 2**retries_done
    delay = max(random.uniform(ceiling / 2, ceiling), retry_after or 0)
    return min(math.ceil(delay), settings.SQS_MAX_DELAY_SECONDS)


@dataclass(frozen=True)
class Skip:
    """A provider passed over because its circuit was open: recorded as a `skipped` event."""

    provider: str
    detail: str
    at: datetime


def admit_first(candidates: list[str]) -> tuple[tuple[str, Admission] | None, list[Skip]]:
    """The first of these providers whose circuit lets a send through (None when every circuit
    is open), and the ones skipped on the way."""
    skips = []
    for name in candidates:
        admission, circuit = RUNTIME.breakers().admit(name)
        if admission is not Admission.REFUSED:
            return (name, admission), skips
        detail = f"skipped {name}: circuit open ({circuit.reason}) until {_clock_time(circuit.until)}"
        skips.append(Skip(name, detail, timezone.now()))
    return None, skips


def send(provider_name: str, admission: Admission, outbound: OutboundMessage) -> SendResult:
    """Send through the provider and tell its circuit how that went. A message the provider
    refused says nothing against the provider; a fault of ours says nothing at all."""
    breakers = RUNTIME.breakers()
    started = time.monotonic()

    def report(ok: bool, retry_after: float | None = None) -> None:
        breakers.record(provider_name, admission, Outcome(ok=ok, latency=time.monotonic() - started, retry_after=retry_after))

    try:
        result = RUNTIME.provider(provider_name).send(outbound)
    except TransientError as error:
        report(False, error.retry_after if error.status_code == 429 else None)
        raise
    except ProviderLevelError as error:
        # retry_after here is the provider saying it refuses everything for that long (SES's
        # paused sending): the circuit opens for it, as for a 429's Retry-After.
        report(False, error.retry_after)
        raise
    except MessageRejected as error:
        if error.status_code is not None:
            report(True)  # the provider answered: it is up
        else:
            breakers.release(provider_name, admission)  # refused before any request: nothing learned
        raise
    except Exception:
        breakers.release(provider_name, admission)
        raise
    report(True)
    return result


def until_any_admits(candidates: list[str]) -> int:
    """Seconds until the first of these open circuits may take a probe (1 at least)."""
    now = time.time()
    reopens = min(
        circuit.until if circuit.state is State.OPEN else now + HALF_OPEN_RECHECK_SECONDS
        for circuit in map(RUNTIME.breakers().read, candidates)
    )
    return min(max(1, math.ceil(reopens - now)), settings.SQS_MAX_DELAY_SECONDS)


def until_admits(provider: str) -> int:
    """Seconds until this provider's circuit may take a probe (0 when it is not open)."""
    circuit = RUNTIME.breakers().read(provider)
    wait = max(0, math.ceil(circuit.until - time.time())) if circuit.state is State.OPEN else 0
    return min(wait, settings.SQS_MAX_DELAY_SECONDS)


def skipped_and_never_tried(message_id: str, failing_provider: str) -> str | None:
    """The first provider this message skipped for an open circuit and never sent to since: it
    gets its turn before the message may fail."""
    skipped, tried = set(), {failing_provider}
    for event_type, provider in MessageEvent.objects.filter(message_id=message_id).values_list("type", "provider"):
        if event_type == MessageEvent.Type.SKIPPED:
            skipped.add(provider)
        elif event_type in (MessageEvent.Type.RETRY_SCHEDULED, MessageEvent.Type.FAILOVER, MessageEvent.Type.ERROR):
            tried.add(provider)
    return next((name for name in provider_order() if name in skipped - tried), None)


def provider_health() -> dict:
    """Each configured provider's circuit as the workers share it (or as this process alone sees
    it, without REDIS_URL), for the operator."""
    breakers = RUNTIME.breakers()
    rows = []
    for name in settings.MAIL_PROVIDERS:
        circuit = breakers.read(name)
        calls, failures, slow = circuit.window()
        rows.append(
            {
                "name": name,
                "circuit": circuit.state.value,
                "since": _moment(circuit.changed_at) if circuit.changed_at else None,
                "reason": circuit.reason,
                "until": _moment(circuit.until) if circuit.state is not State.CLOSED else None,
                "calls": calls,
                "failures": failures,
                "slow": slow,
            }
        )
    return {"providers": rows, "shared": breakers.shared, "enabled": settings.BREAKER_ENABLED}


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _clock_time(epoch: float) -> str:
    return _moment(epoch).strftime("%H:%M:%S UTC")
