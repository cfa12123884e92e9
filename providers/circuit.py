"""A circuit breaker per provider: stop waiting on a provider that is down.

Every send reports its outcome and latency. The circuit of a provider opens on a run of failures,
on a failure rate or a slow-call rate over a sliding window, or on a 429 with Retry-After (for at
least that long). While it is open, messages skip the provider. When the cool-down has passed, one
send is let through as a probe (half-open): its success closes the circuit and traffic returns, its
failure opens it again. A probe whose worker died is taken over when its lease runs out.

The rules are plain functions of a provider's `Circuit` record (`admit`, `record`); where the
record lives is a store's business: Redis, so that every worker process on every host shares one
view, or this process's memory when Redis is not configured or not answering."""

from __future__ import annotations

import enum
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import redis

log = logging.getLogger(__name__)

# The window is kept as this many buckets of counts: memory and Redis traffic stay constant
# whatever the send rate, at the price of a window that slides in steps of window/BUCKETS.
BUCKETS = 6


@dataclass(frozen=True)
class BreakerConfig:
    failure_run: int = 5  # this many failures in a row open the circuit
    failure_rate: float = 0.5  # or this share of the window's calls failing ...
    slow_call_seconds: float = 5.0
    slow_call_rate: float = 0.5  # ... or this share of them slower than slow_call_seconds ...
    min_calls: int = 10  # ... once the window holds at least this many calls
    window_seconds: float = 60.0
    cooldown_seconds: float = 30.0  # open this long before a probe
    probe_lease_seconds: float = 15.0  # longer than a send's connect + read timeouts


class State(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class Circuit:
    """What is known of one provider's health."""

    state: State = State.CLOSED
    # OPEN: when a probe may go. HALF_OPEN: when the probe's lease ends.
    until: float = 0.0
    reason: str = ""
    changed_at: float = 0.0
    failures_in_a_row: int = 0
    # Bucket start (epoch seconds) -> [calls, failures, slow calls].
    buckets: dict[int, list[int]] = field(default_factory=dict)

    def window(self) -> tuple[int, int, int]:
        calls = failures = slow = 0
        for bucket_calls, bucket_failures, bucket_slow in self.buckets.values():
            calls, failures, slow = calls + bucket_calls, failures + bucket_failures, slow + bucket_slow
        return calls, failures, slow

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "state": self.state.value})

    @classmethod
    def from_json(cls, text: str | None) -> Circuit:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(**{**data, "state": State(data["state"]), "buckets": {int(k): v for k, v in data["buckets"].items()}})


class Admission(str, enum.Enum):
    PASS = "pass"  # closed: send
    PROBE = "probe"  # half-open and this send is the probe: report its outcome
    REFUSED = "refused"  # open, or another worker is probing: skip this provider


@dataclass(frozen=True)
class Outcome:
    ok: bool  # False: a transient or provider-level failure; a message the provider refused is ok
    latency: float
    retry_after: float | None = None  # from a 429


# --- the rules -------------------------------------------------------------------------------


def admit(circuit: Circuit, now: float, config: BreakerConfig) -> tuple[Circuit, Admission]:
    if circuit.state is State.CLOSED:
        return circuit, Admission.PASS
    if now < circuit.until:
        return circuit, Admission.REFUSED
    # Open and cooled down, or a probe whose lease ran out (its worker died): this send probes.
    probing = replace(circuit, state=State.HALF_OPEN, until=now + config.probe_lease_seconds, changed_at=now)
    return probing, Admission.PROBE


def record(circuit: Circuit, now: float, config: BreakerConfig, admission: Admission, outcome: Outcome) -> Circuit:
    slow = outcome.latency > config.slow_call_seconds
    if admission is Admission.PROBE:
        if circuit.state is not State.HALF_OPEN:
            return circuit  # the lease ran out and another probe has decided meanwhile
        if outcome.ok and not slow:
            return Circuit(state=State.CLOSED, reason="probe succeeded", changed_at=now)
        return _opened(circuit, now, config, f"probe {'was slow' if outcome.ok else 'failed'}", outcome.retry_after)
    if circuit.state is not State.CLOSED:
        return circuit  # a send that started before the circuit opened: its news is old

    bucket_width = config.window_seconds / BUCKETS
    bucket = int(now // bucket_width * bucket_width)
    oldest = now - config.window_seconds
    buckets = {start: counts for start, counts in circuit.buckets.items() if start + bucket_width > oldest}
    calls, failures, slow_calls = buckets.get(bucket, [0, 0, 0])
    buckets[bucket] = [calls + 1, failures + (not outcome.ok), slow_calls + slow]
    updated = replace(circuit, buckets=buckets, failures_in_a_row=0 if outcome.ok else circuit.failures_in_a_row + 1)

    calls, failures, slow_calls = updated.window()
    if outcome.retry_after:
        return _opened(updated, now, config, f"429: retry after {outcome.retry_after:g} s", outcome.retry_after)
    if updated.failures_in_a_row >= config.failure_run:
        return _opened(updated, now, config, f"{updated.failures_in_a_row} failures in a row")
    if calls >= config.min_calls and failures / calls >= config.failure_rate:
        return _opened(updated, now, config, f"{failures} of {calls} calls failed in {config.window_seconds:g} s")
    if calls >= config.min_calls and slow_calls / calls >= config.slow_call_rate:
        return _opened(updated, now, config, f"{slow_calls} of {calls} calls took over {config.slow_call_seconds:g} s")
    return updated


def release(circuit: Circuit, now: float, admission: Admission) -> Circuit:
    """A probe that ended without telling anything about the provider (our own fault, a message
    refused before any request): the next send may probe at once, instead of after its lease."""
    if admission is Admission.PROBE and circuit.state is State.HALF_OPEN:
        return replace(circuit, state=State.OPEN, until=now, changed_at=now)
    return circuit


def _opened(circuit: Circuit, now: float, config: BreakerConfig, reason: str, retry_after: float | None = None) -> Circuit:
    # A 429's Retry-After is the provider saying how long; otherwise the cool-down.
    wait = retry_after or config.cooldown_seconds
    return Circuit(state=State.OPEN, until=now + wait, reason=reason, changed_at=now)


# --- where circuits are kept -----------------------------------------------------------------


class LocalCircuits:
    """This process's own view: a provider's circuit opens only on what this process saw."""

    shared = False

    def __init__(self):
        self._circuits: dict[str, Circuit] = {}
        self._lock = threading.Lock()

    def update(self, provider: str, change: Callable[[Circuit], tuple[Circuit, object]]):
        with self._lock:
            circuit, result = change(self._circuits.get(provider, Circuit()))
            self._circuits[provider] = circuit
            return circuit, result

    def read(self, provider: str) -> Circuit:
        with self._lock:
            return self._circuits.get(provider, Circuit())


class RedisCircuits:
    """One view for every worker: each provider's record is one Redis key, changed with
    WATCH/MULTI so that two workers reporting at once cannot overwrite each other's news."""

    shared = True

    def __init__(self, url: str, prefix: str):
        # Short timeouts: a send must not wait on its breaker; the caller falls back instead.
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        self._prefix = prefix
        self._watch_error = redis.WatchError

    def _key(self, provider: str) -> str:
        return f"{self._prefix}:{provider}"

    def update(self, provider: str, change: Callable[[Circuit], tuple[Circuit, object]]):
        key = self._key(provider)
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    before = pipe.get(key)
                    circuit, result = change(Circuit.from_json(before))
                    after = circuit.to_json()
                    if after.encode() != before:
                        pipe.multi()
                        pipe.set(key, after)
                        pipe.execute()
                    else:
                        pipe.unwatch()
                    return circuit, result
                except self._watch_error:
                    continue  # another worker changed it first: decide again on its news

    def read(self, provider: str) -> Circuit:
        return Circuit.from_json(self._redis.get(self._key(provider)))


class Breakers:
    """The breakers of all providers, as the delivery code uses them. With Redis configured and
    answering, their state is shared; while Redis fails, this process decides alone (and says so
    once a minute) and tries Redis again after `retry_shared_after` seconds."""

    def __init__(self, config: BreakerConfig, shared: RedisCircuits | None = None, clock: Callable[[], float] = time.time):
        self.config = config
        self._shared = shared
        self._local = LocalCircuits()
        self._clock = clock
        self._shared_down_until = 0.0
        self.retry_shared_after = 30.0

    @property
    def shared(self) -> bool:
        return self._shared is not None

    def admit(self, provider: str) -> tuple[Admission, Circuit]:
        now = self._clock()
        circuit, admission = self._update(provider, lambda c: admit(c, now, self.config))
        return admission, circuit

    def record(self, provider: str, admission: Admission, outcome: Outcome) -> None:
        now = self._clock()
        self._update(provider, lambda c: (record(c, now, self.config, admission, outcome), None))

    def release(self, provider: str, admission: Admission) -> None:
        if admission is Admission.PROBE:
            now = self._clock()
            self._update(provider, lambda c: (release(c, now, admission), None))

    def read(self, provider: str) -> Circuit:
        store = self._store()
        try:
            return store.read(provider)
        except Exception as exc:
            self._shared_failed(exc)
            return self._local.read(provider)

    def _store(self):
        if self._shared is not None and self._clock() >= self._shared_down_until:
            return self._shared
        return self._local

    def _update(self, provider: str, change):
        store = self._store()
        before: list[Circuit] = []

        def tracked(circuit: Circuit):
            before[:] = [circuit]
            return change(circuit)

        try:
            circuit, result = store.update(provider, tracked)
        except Exception as exc:
            if store is self._local:
                raise
            self._shared_failed(exc)
            store = self._local
            circuit, result = store.update(provider, tracked)
        if before and before[0].state is not circuit.state:
            log.warning(
                "circuit %s",
                circuit.state.value,
                extra={
                    "provider": provider,
                    "circuit": circuit.state.value,
                    "previous": before[0].state.value,
                    "reason": circuit.reason,
                    "until": _iso(circuit.until) if circuit.state is not State.CLOSED else None,
                    "shared": store is not self._local,
                },
            )
        return circuit, result

    def _shared_failed(self, exc: Exception) -> None:
        now = self._clock()
        if now >= self._shared_down_until:
            log.warning(
                "breaker state store unavailable; deciding in this process alone",
                extra={"error": repr(exc), "retry_in_seconds": self.retry_shared_after},
            )
        self._shared_down_until = now + self.retry_shared_after


class DisabledBreakers:
    """Every provider always admitted: today's behaviour, for comparison (BREAKER_ENABLED=false)."""

    config = None
    shared = False

    def admit(self, provider: str) -> tuple[Admission, Circuit]:
        return Admission.PASS, Circuit()

    def record(self, provider: str, admission: Admission, outcome: Outcome) -> None:
        pass

    def release(self, provider: str, admission: Admission) -> None:
        pass

    def read(self, provider: str) -> Circuit:
        return Circuit()


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(epoch)))


def build_breakers(config) -> Breakers | DisabledBreakers:
    """From a settings-like object with the BREAKER_* names. The Redis keys are named after the
    delivery queue: the workers of one queue are one service and share one view of providers."""
    if not config.BREAKER_ENABLED:
        return DisabledBreakers()
    breaker_config = BreakerConfig(
        failure_run=config.BREAKER_FAILURE_RUN,
        failure_rate=config.BREAKER_FAILURE_RATE,
        slow_call_seconds=config.BREAKER_SLOW_CALL_SECONDS,
        slow_call_rate=config.BREAKER_SLOW_CALL_RATE,
        min_calls=config.BREAKER_MIN_CALLS,
        window_seconds=config.BREAKER_WINDOW_SECONDS,
        cooldown_seconds=config.BREAKER_COOLDOWN_SECONDS,
        # A probe's worker is presumed dead when its claim on the message would be.
        probe_lease_seconds=config.DELIVERY_LEASE_SECONDS,
    )
    shared = RedisCircuits(config.REDIS_URL, f"mailer:circuit:{config.SQS_QUEUE_NAME}") if config.REDIS_URL else None
    return Breakers(breaker_config, shared)
