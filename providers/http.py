"""HTTP for every provider: one pooled session per provider, bounded timeouts, and the single
place where a response or a network failure becomes a classified ProviderError."""

from __future__ import annotations

import datetime
import email.utils
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from .base import MessageRejected, ProviderError, ProviderLevelError, TransientError

MESSAGE_LEVEL_STATUSES = {400, 413, 422}
# 408: the provider gave up waiting for our request; like a timeout of ours, worth another try.
TRANSIENT_STATUSES = {408, 429}
# Provider error bodies can be long HTML pages; the operator needs the start of it.
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Timeouts:
    connect: float
    read: float

    def as_requests(self) -> tuple[float, float]:
        return (self.connect, self.read)


DEFAULT_CONNECTIONS = 32


class PooledSession(requests.Session):
    """requests' session, reading the environment's proxy and CA settings (HTTPS_PROXY, NO_PROXY,
    REQUESTS_CA_BUNDLE, ...) once per scheme and host, where requests reads them from os.environ
    again for every request: 3 % of a worker's CPU (docs/benchmarks.md, "Issue 21: delivery").
    A running process's environment does not change; a provider speaks to one or two hosts."""

    def __init__(self):
        super().__init__()
        self._environment: dict[tuple, dict] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if proxies or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        if key not in self._environment:
            self._environment[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        found = self._environment[key]
        return {**found, "proxies": dict(found["proxies"])}


def pooled_session(connections: int = DEFAULT_CONNECTIONS) -> requests.Session:
    """Keeps up to `connections` connections per host alive for reuse."""
    session = PooledSession()
    # No retries here: retrying is the delivery pipeline's decision, made with backoff in SQS.
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def post(provider: str, session: requests.Session, url: str, timeouts: Timeouts, **kwargs) -> requests.Response:
    """POST and return a 2xx response; raise a classified ProviderError for anything else."""
    return request("POST", provider, session, url, timeouts, **kwargs)


def get(provider: str, session: requests.Session, url: str, timeouts: Timeouts, **kwargs) -> requests.Response:
    """GET (a provider's log API) and return a 2xx response; raise a classified ProviderError."""
    return request("GET", provider, session, url, timeouts, **kwargs)


def request(method: str, provider: str, session: requests.Session, url: str, timeouts: Timeouts, **kwargs) -> requests.Response:
    """Make the request and return a 2xx response; raise a classified ProviderError for anything else."""
    try:
        # A redirect would turn a POST into a GET; a 3xx is a configuration problem to report.
        response = session.request(method, url, timeout=timeouts.as_requests(), allow_redirects=False, **kwargs)
    except requests.Timeout as exc:
        raise TransientError(provider, f"timed out: {exc}") from exc
    except requests.ConnectionError as exc:
        raise TransientError(provider, f"connection failed: {exc}") from exc
    except (
        requests.exceptions.InvalidHeader,
        requests.exceptions.InvalidURL,
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidJSONError,
    ) as exc:
        # The request could not even be made: a malformed key or URL in our configuration.
        raise ProviderLevelError(provider, f"request could not be made: {exc}") from exc
    except requests.RequestException as exc:
        # A broken response (chunked encoding, decoding): the provider may or may not have the mail.
        raise TransientError(provider, f"request failed: {exc!r}") from exc
    if 200 <= response.status_code < 300:
        return response
    raise error_for_response(provider, response)


def error_for_response(provider: str, response: requests.Response) -> ProviderError:
    status = response.status_code
    reason = f"HTTP {status}: {response.text[:MAX_REASON_CHARS]}".strip()
    if status in TRANSIENT_STATUSES:
        return TransientError(provider, reason, status_code=status, retry_after=retry_after_seconds(response))
    if status >= 500:
        return TransientError(provider, reason, status_code=status)
    if status in MESSAGE_LEVEL_STATUSES:
        return MessageRejected(provider, reason, status_code=status)
    # 401/403 (bad key, suspended account), 404 (unknown domain or URL) and anything else in 4xx
    # is about our account or configuration, not this message.
    return ProviderLevelError(provider, reason, status_code=status)


def retry_after_seconds(response: requests.Response) -> float | None:
    """Retry-After as seconds, from either of its forms (delta-seconds or an HTTP date)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)  # HTTP dates are GMT
    return max(0.0, when.timestamp() - time.time())
