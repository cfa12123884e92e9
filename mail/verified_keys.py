"""API keys that authenticated moments ago, remembered by a process so that a client's next
requests skip the database: the lookup (one query joining the key and its profile, built by the
ORM) was the largest cost of an accept outside its write and publish (docs/benchmarks.md,
"Issue 21: accept CPU").

Remembered by the SHA-256 of the whole key the client sent, never by its prefix: only the very
key that was verified finds its entry, so a right prefix with a wrong secret is looked up and
refused as before. An entry lives for `seconds` (API_KEY_CACHE_SECONDS) from its read, so a
revocation, a deletion, a new expiry date or a changed scope, team or network allow-list is seen
by every process within that bound. What depends on the request or the clock the caller still
checks on every request (mail/api/auth.py): the expiry date against now, the client's address
against the allow-list. A refusal is never remembered: a wrong key always costs its query.
Held by mail/runtime.py's Runtime."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from cachetools import LRUCache

#: Keys remembered per process, the least recently used forgotten first: far more than the keys
#: a deployment uses at once, and a few hundred kB at most.
MAX_KEYS = 4096

Found = TypeVar("Found")


class VerifiedKeys(Generic[Found]):
    def __init__(self, max_keys: int = MAX_KEYS, clock: Callable[[], float] = time.monotonic):
        self._entries: LRUCache = LRUCache(maxsize=max_keys)
        # gunicorn's gthread workers would share this between threads; under gevent it costs nothing.
        self._lock = threading.Lock()
        self._clock = clock

    def get(self, presented: str, seconds: float, load: Callable[[str], Found | None]) -> Found | None:
        """What load(presented) answered within the last `seconds`, or its answer now (kept when
        it found something). With `seconds` 0 or less, load(presented) every time."""
        if seconds <= 0:
            return load(presented)
        digest = hashlib.sha256(presented.encode()).digest()
        now = self._clock()
        with self._lock:
            entry = self._entries.get(digest)
        if entry is not None and now < entry[0]:
            return entry[1]
        found = load(presented)
        with self._lock:
            if found is None:
                self._entries.pop(digest, None)
            else:
                self._entries[digest] = (now + seconds, found)
        return found
