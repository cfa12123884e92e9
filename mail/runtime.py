"""What a process builds once and keeps: each provider's client (its HTTP connection pool is
reused across messages), the circuit breakers, a short-lived copy of the admin's provider
switches, the API keys that authenticated moments ago (mail/verified_keys.py) and the accepts'
coalescer (mail/coalescing.py). One object, so that what a process caches is in one place and a
test can start afresh.

Built on first use, never at import: in a forked worker that is after the fork, so no connection
pool or Redis client is shared between processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from celery import current_app
from django.conf import settings
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from providers.circuit import Breakers, DisabledBreakers, build_breakers
from providers.http import DEFAULT_CONNECTIONS
from providers.lookup import Lookup
from providers.registry import REGISTRY
from providers.spec import Provider

from .coalescing import Coalescer
from .verified_keys import VerifiedKeys


class Runtime:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget everything built so far (tests change settings between cases)."""
        self._providers: dict[str, Provider] = {}
        self._breakers: Breakers | DisabledBreakers | None = None
        self._order: tuple[float, list[str]] = (0.0, [])
        self._lookups: dict[str, Lookup | None] = {}
        # Log APIs have rate limits of their own (and a burst of takeovers after a crash must not
        # spend them): at most AMBIGUOUS_LOOKUPS_PER_MINUTE lookups per provider per process.
        self._lookup_limiter = MovingWindowRateLimiter(MemoryStorage())
        self._coalescers: dict[str, Coalescer] = {}
        self.verified_keys = VerifiedKeys()

    def provider(self, name: str) -> Provider:
        with self._lock:
            if name not in self._providers:
                # As many kept connections as this worker has sends in flight (mailer_project/celery.py).
                concurrency = current_app.conf.worker_concurrency
                connections = concurrency if isinstance(concurrency, int) and concurrency > 0 else DEFAULT_CONNECTIONS
                self._providers[name] = REGISTRY.build(name, settings, connections)
            return self._providers[name]

    def lookup(self, name: str) -> Lookup | None:
        """The provider's log-API client when it has one and the rate allows a lookup now."""
        with self._lock:
            if name not in self._lookups:
                self._lookups[name] = REGISTRY.build_lookup(name, settings)
            found = self._lookups[name]
        rate = RateLimitItemPerMinute(settings.AMBIGUOUS_LOOKUPS_PER_MINUTE)
        return found if found is not None and self._lookup_limiter.hit(rate, name) else None

    def can_look_up(self, name: str) -> bool:
        spec = REGISTRY.get(name)
        return spec is not None and spec.lookup is not None

    def coalescer(self, name: str, build: Callable[[], Coalescer]) -> Coalescer:
        """The process's one Coalescer of this name (mail/coalescing.py), built on first use."""
        with self._lock:
            if name not in self._coalescers:
                self._coalescers[name] = build()
            return self._coalescers[name]

    def breakers(self) -> Breakers | DisabledBreakers:
        with self._lock:
            if self._breakers is None:
                self._breakers = build_breakers(settings)
            return self._breakers

    def provider_order(self, read: Callable[[], list[str]]) -> list[str]:
        """read()'s answer, asked again at most every PROVIDER_SETTINGS_CACHE_SECONDS."""
        expires, order = self._order
        if time.monotonic() < expires:
            return order
        order = read()
        self._order = (time.monotonic() + settings.PROVIDER_SETTINGS_CACHE_SECONDS, order)
        return order


RUNTIME = Runtime()
