"""The per-key rate limit: what a request costs, and whether the key may spend it.

A sliding-window counter from the `limits` library (the one Flask-Limiter is built on): in Redis
when REDIS_URL is set, where each charge is one Lua script, so concurrent requests in any number
of API processes cannot both take the last unit; in this process's memory otherwise (one count
per process, as docs/security.md says). A refused charge takes nothing, so a batch too big for
what is left can be split and sent again.

If Redis stops answering, the count falls back to memory rather than refusing every request or
letting every request through unmetered. Redis is asked with short timeouts, and after a failure
not again for STORE_RETRY_SECONDS, so a Redis that hangs costs one request half a second, not
every request five (providers/circuit.py treats its store the same way)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerHour, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: A message costs one unit per started RECIPIENTS_PER_UNIT of its recipients (to, cc and bcc):
#: one unit for an ordinary message, ten for one with 1,000 recipients. A batch costs the sum.
RECIPIENTS_PER_UNIT = 100

STORE_TIMEOUT_SECONDS = 0.5
STORE_RETRY_SECONDS = 30

# The periods of DRF's rate notation, which API_RATE_LIMIT has always used ("1200/min", "20/s").
PERIODS = {"s": RateLimitItemPerSecond, "m": RateLimitItemPerMinute, "h": RateLimitItemPerHour, "d": RateLimitItemPerDay}


def message_cost(recipients: int) -> int:
    return max(1, math.ceil(recipients / RECIPIENTS_PER_UNIT))


def parse_rate(rate: str) -> RateLimitItem:
    """'1200/min' → 1,200 units per minute; a malformed rate is a configuration error."""
    amount, _, period = rate.partition("/")
    item = PERIODS.get(period.strip()[:1].lower())
    if not amount.strip().isdigit() or item is None or int(amount) < 1:
        raise ValueError(f"API_RATE_LIMIT must look like '1200/min' or '20/s', not {rate!r}")
    return item(int(amount))


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the window has room again (for Retry-After when refused).
    reset_after: int
    #: The window's length in seconds.
    window: int

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers) for this
        verdict: the one place their wire format is written."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_after),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }


class RateLimiter:
    def __init__(self, redis_url: str, clock=time.monotonic):
        self.shared = (
            SlidingWindowCounterRateLimiter(
                RedisStorage(redis_url, socket_connect_timeout=STORE_TIMEOUT_SECONDS, socket_timeout=STORE_TIMEOUT_SECONDS)
            )
            if redis_url
            else None
        )
        self.local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self.clock = clock
        self.shared_down_until = 0.0  # after a failure, Redis is left alone until then

    def charge(self, rate: str, key_id: str, cost: int = 1) -> Verdict:
        item = parse_rate(rate)
        if self.shared is None or self.clock() < self.shared_down_until:
            return self._charge(self.local, item, key_id, cost)
        try:
            return self._charge(self.shared, item, key_id, cost)
        except RedisError as exc:
            self.shared_down_until = self.clock() + STORE_RETRY_SECONDS
            log.warning(
                "rate limit store unavailable; counting in this process for %d s",
                STORE_RETRY_SECONDS,
                extra={"error": str(exc)},
            )
            return self._charge(self.local, item, key_id, cost)

    @staticmethod
    def _charge(limiter: SlidingWindowCounterRateLimiter, item: RateLimitItem, key_id: str, cost: int) -> Verdict:
        allowed = limiter.hit(item, key_id, cost=cost)
        stats = limiter.get_window_stats(item, key_id)
        return Verdict(
            allowed=allowed,
            limit=item.amount,
            remaining=max(0, stats.remaining),
            reset_after=max(1, math.ceil(stats.reset_time - time.time())),
            window=item.get_expiry(),
        )


@lru_cache(maxsize=4)
def limiter_for(redis_url: str) -> RateLimiter:
    """One limiter (and one Redis connection pool) per process and store."""
    return RateLimiter(redis_url)
