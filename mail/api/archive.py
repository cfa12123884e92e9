"""The archive of rejected API requests in MongoDB (docs/operations.md), on when MONGODB_URI is set.

Every request the API answers with a 4xx is stored with its time, client key prefix, remote
address, the error and the start of its body (secrets redacted); a TTL index expires them. The
archive is for an operator's eyes: it must never slow the API down for long or fail it, so
MongoDB's timeouts are short and, after a failure, the archive is skipped for a while."""

from __future__ import annotations

import json
import logging
import re
import threading
import time

from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)

COLLECTION = "rejected_requests"
MAX_BODY_CHARS = 16_000
SECRET_KEYS = ("password", "secret", "token", "api_key", "apikey", "authorization", "key")
TIMEOUT_MS = 500
SKIP_AFTER_FAILURE_SECONDS = 30


def mongo_client(*args, **kwargs):
    # pymongo imported on the first connection, not with this module: housekeeping, which erases
    # archived requests, runs in the callbacks' worker, and MongoDB's client is about 5 MB a
    # process would otherwise hold with MONGODB_URI unset (docs/benchmarks.md, issue 21).
    import pymongo

    return pymongo.MongoClient(*args, **kwargs)


class RejectedRequestArchive:
    """The archive's connection, made on first use, and its pause after a failure."""

    def __init__(self, client_class=mongo_client):
        self._lock = threading.Lock()
        self.reset(client_class)

    def reset(self, client_class=mongo_client) -> None:
        """Forget the connection (tests put mongomock's client class in pymongo's place: no MongoDB
        server can be installed on the development machines)."""
        self.client_class = client_class
        self._collection = None
        self._skip_until = 0.0

    def collection(self):
        with self._lock:
            if self._collection is None:
                client = self.client_class(
                    settings.MONGODB_URI,
                    serverSelectionTimeoutMS=TIMEOUT_MS,
                    connectTimeoutMS=TIMEOUT_MS,
                    socketTimeoutMS=TIMEOUT_MS,
                )
                collection = client.get_default_database(default="mailer")[COLLECTION]
                collection.create_index("at", expireAfterSeconds=settings.MONGODB_ARCHIVE_TTL_DAYS * 24 * 3600)
                self._collection = collection
            return self._collection

    def record(self, request, response) -> None:
        if not settings.MONGODB_URI or time.monotonic() < self._skip_until:
            return
        try:
            self.collection().insert_one(_document(request, response))
        except Exception:
            self._skip_until = time.monotonic() + SKIP_AFTER_FAILURE_SECONDS
            log.warning(
                "the rejected-request archive is unavailable; skipping it for %d s", SKIP_AFTER_FAILURE_SECONDS, exc_info=True
            )

    def erase_mentions(self, key_prefixes: list[str], address: str) -> int:
        """Delete the archived requests of these API keys that quote `address` (an erasure,
        mail/erasure.py); how many. Raises when MongoDB does not answer, so the erasure is not
        taken for done."""
        if not settings.MONGODB_URI or not key_prefixes:
            return 0
        quoted = {"$regex": re.escape(address), "$options": "i"}
        return self.collection().delete_many({"api_key_prefix": {"$in": key_prefixes}, "body": quoted}).deleted_count


ARCHIVE = RejectedRequestArchive()


def redact(value):
    """The value with every field whose name suggests a secret replaced."""
    if isinstance(value, dict):
        return {k: "[redacted]" if any(s in str(k).lower() for s in SECRET_KEYS) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _body_for_archive(request) -> str:
    try:
        raw = request.body
    except Exception:  # not read by the view and no longer readable, or over Django's own cap
        return "[body not read]"
    text = raw[: MAX_BODY_CHARS * 4].decode("utf-8", errors="replace")
    try:
        text = json.dumps(redact(json.loads(text)), ensure_ascii=False)
    except ValueError:
        pass  # not JSON (or cut short): kept as text
    return text[:MAX_BODY_CHARS]


def _document(request, response) -> dict:
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    key = authorization.partition(" ")[2]
    try:
        error = json.loads(response.content).get("error", {})
    except ValueError:
        error = {}
    oversized = response.status_code in (411, 413)
    return {
        "at": timezone.now(),
        "status": response.status_code,
        "error": error,
        "method": request.method,
        "path": request.path[:500],
        "remote_addr": request.META.get("REMOTE_ADDR", ""),
        # The key's public prefix only, never the key.
        "api_key_prefix": key.partition(".")[0][:8] if "." in key else "",
        "content_type": request.META.get("CONTENT_TYPE", "")[:200],
        "content_length": request.META.get("CONTENT_LENGTH", ""),
        "body": "[body not read]" if oversized else _body_for_archive(request),
    }


class ArchiveRejectedRequests:
    """Middleware: archive every 4xx answer of the API."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if 400 <= response.status_code < 500 and request.path.startswith("/api/"):
            ARCHIVE.record(request, response)
        return response
