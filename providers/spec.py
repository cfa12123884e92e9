"""What a provider folder declares, so that the rest of the service never names a provider.

A provider is one folder, providers/<name>/, whose `__init__` exposes a `ProviderSpec`: how to
build its client from settings, the settings it reads, the limits of one request, and, when it
reports delivery events, how its webhooks are verified and read. providers/registry.py lists the
specs; the API, the worker, the webhook view and the settings ask the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .base import OutboundMessage, SendResult
from .events import WebhookBatch
from .http import Timeouts
from .lookup import Lookup


class Provider(Protocol):
    """A built provider client: one per process, so its connection pool is reused."""

    name: str

    def send(self, message: OutboundMessage) -> SendResult: ...


@dataclass(frozen=True)
class Setting:
    """One environment variable a provider reads (mailer_project/settings.py reads them all)."""

    name: str
    default: str | float | int
    cast: type = str
    # Raises ValueError for a value the service must not start with.
    check: Callable[[Any], object] | None = None


@dataclass(frozen=True)
class Limits:
    """What one request to the provider may carry. The API accepts only what every registered
    provider takes (Limits.strictest), so a failover never meets a message the next one refuses."""

    recipients: int  # to, cc and bcc together
    tags: int
    tag_chars: int
    # Headers the provider reads as instructions to itself (X-SG-*, X-Mailgun-*): a client's
    # value would change how the provider treats the mail, so the API refuses them.
    reserved_header_prefixes: tuple[str, ...] = ()

    @staticmethod
    def strictest(limits: list[Limits]) -> Limits:
        return Limits(
            recipients=min(limit.recipients for limit in limits),
            tags=min(limit.tags for limit in limits),
            tag_chars=min(limit.tag_chars for limit in limits),
            reserved_header_prefixes=tuple(sorted({p for limit in limits for p in limit.reserved_header_prefixes})),
        )


# read(body, headers, key, max_age_seconds, now) -> the verified events, or WebhookRefused /
# WebhookMalformed (providers/events.py). The caller supplies the clock and the key (see
# WebhookSpec.key).
WebhookReader = Callable[[bytes, Mapping[str, str], Any, int, float], WebhookBatch]


@dataclass(frozen=True)
class WebhookSpec:
    key_setting: str  # the setting that holds the verification key; unset, every request is refused
    refusal_status: int  # the answer to a bad, stale or replayed signature
    read: WebhookReader
    # Anyone can post to a webhook, so its body is capped (413 by Content-Length, before it is read)
    # near the largest request the provider documents, far below the API's own cap.
    max_body_bytes: int = 256 * 1024
    # Headers without which no request can be verified: one missing is refused before the body is read.
    signature_headers: tuple[str, ...] = ()
    # What read() gets as its key when the key setting is set: by default that setting's value.
    # A provider whose verification needs more than one value (SES: its SNS topic, where SNS's
    # certificates may be fetched from, and how long to wait for one) builds it from the settings.
    key_from_settings: Callable[[Any], Any] | None = None

    def key(self, config: Any) -> Any:
        """The key for read(), from a settings-like object; falsy while the key setting is unset."""
        value = getattr(config, self.key_setting)
        return self.key_from_settings(config) if value and self.key_from_settings else value


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    # build(settings, timeouts, connections): the provider's client from a settings-like object.
    build: Callable[[Any, Timeouts, int], Provider]
    settings: tuple[Setting, ...]
    limits: Limits
    # Raises MessageRejected (with the field at fault) for what the provider would refuse; the
    # API runs it before accepting, the client before each request.
    check_limits: Callable[[OutboundMessage], None]
    webhook: WebhookSpec | None = None
    # lookup(settings, timeouts): a client of the provider's log API that says whether it accepted
    # a message (providers/lookup.py); None for a provider that cannot be asked.
    lookup: Callable[[Any, Timeouts], Lookup] | None = None
