"""One callback request and its outcome, every failure classified here.

Connects to the address mail/callbacks/destination.py checked (TLS still verifies the URL's host
name), follows no redirect, waits CALLBACK_CONNECT_TIMEOUT / CALLBACK_READ_TIMEOUT, and reads at
most CALLBACK_MAX_RESPONSE_BYTES of the answer. Retryable: timeouts, connection errors, 408, 429
and 5xx; anything else that is not 2xx is final."""

from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3
from django.conf import settings

from . import destination

EXCERPT_CHARACTERS = 500
RETRYABLE_STATUSES = (408, 429)


@dataclass(frozen=True)
class Outcome:
    succeeded: bool
    retryable: bool
    status_code: int | None = None
    latency_ms: int | None = None
    excerpt: str = ""
    error: str = ""


def allowed_networks() -> tuple:
    return destination.parse_networks(settings.CALLBACK_ALLOWED_NETWORKS)


def check(url: str) -> destination.Destination | destination.Refused:
    return destination.check(url, allow_http=settings.CALLBACK_ALLOW_HTTP, allowed=allowed_networks())


def classify(status_code: int) -> tuple[bool, bool]:
    """(succeeded, retryable) for an HTTP status."""
    if 200 <= status_code < 300:
        return True, False
    return False, status_code in RETRYABLE_STATUSES or status_code >= 500


def post(url: str, headers: dict[str, str], body: str) -> Outcome:
    checked = check(url)
    if isinstance(checked, destination.Refused):
        return Outcome(False, False, error=f"destination refused: {checked.reason}")
    timeout = urllib3.Timeout(connect=settings.CALLBACK_CONNECT_TIMEOUT, read=settings.CALLBACK_READ_TIMEOUT)
    common = {"port": checked.port, "timeout": timeout, "retries": False, "maxsize": 1}
    if checked.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            checked.address, server_hostname=checked.host, assert_hostname=checked.host, cert_reqs="CERT_REQUIRED", **common
        )
    else:
        pool = urllib3.HTTPConnectionPool(checked.address, **common)
    default_port = 443 if checked.scheme == "https" else 80
    host_header = checked.host if checked.port == default_port else f"{checked.host}:{checked.port}"
    if ":" in checked.host:
        host_header = f"[{checked.host}]" if checked.port == default_port else f"[{checked.host}]:{checked.port}"
    started = time.monotonic()
    try:
        response = pool.urlopen(
            "POST",
            checked.target,
            body=body.encode(),
            headers={
                **headers,
                "Host": host_header,
                "Content-Type": "application/json",
                "User-Agent": "Mailer-Callbacks/1",
            },
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            answer = response.read(settings.CALLBACK_MAX_RESPONSE_BYTES, decode_content=False) or b""
        finally:
            response.release_conn()
    except urllib3.exceptions.NewConnectionError as exc:  # refused, unreachable (urllib3 files it under timeouts)
        return Outcome(False, True, latency_ms=_since(started), error=f"connection error: {exc.__class__.__name__}")
    except urllib3.exceptions.TimeoutError as exc:
        return Outcome(False, True, latency_ms=_since(started), error=f"timeout: {exc.__class__.__name__}")
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:  # ValueError: a header http.client refuses
        return Outcome(False, True, latency_ms=_since(started), error=f"connection error: {exc.__class__.__name__}: {exc}"[:500])
    finally:
        pool.close()
    succeeded, retryable = classify(response.status)
    error = ""
    if 300 <= response.status < 400:
        error = f"redirect to {response.headers.get('Location', '?')[:200]} not followed"
    elif not succeeded:
        error = f"HTTP {response.status}"
    return Outcome(
        succeeded,
        retryable,
        status_code=response.status,
        latency_ms=_since(started),
        excerpt=answer[:EXCERPT_CHARACTERS].decode("utf-8", "replace"),
        error=error,
    )


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
