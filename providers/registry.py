"""Provider names (as used in MAIL_PROVIDERS) to provider classes and their configuration."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from .base import OutboundMessage, SendResult
from .http import DEFAULT_CONNECTIONS, Timeouts
from .mailgun import MailgunProvider
from .sendgrid import SendGridProvider


class Provider(Protocol):
    name: str

    def send(self, message: OutboundMessage) -> SendResult: ...


def _sendgrid(config: Any, timeouts: Timeouts, connections: int) -> Provider:
    return SendGridProvider(api_key=config.SENDGRID_API_KEY, api_url=config.SENDGRID_API_URL, timeouts=timeouts, connections=connections)


def _mailgun(config: Any, timeouts: Timeouts, connections: int) -> Provider:
    return MailgunProvider(
        api_key=config.MAILGUN_API_KEY,
        domain=config.MAILGUN_DOMAIN,
        api_url=config.MAILGUN_API_URL,
        timeouts=timeouts,
        connections=connections,
    )


FACTORIES: dict[str, Callable[[Any, Timeouts, int], Provider]] = {
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
}


def build_provider(name: str, config: Any) -> Provider:
    """Build the named provider from a settings-like object with the DESIGN §5 names as attributes."""
    if name not in FACTORIES:
        raise KeyError(f"unknown mail provider {name!r}; known: {', '.join(sorted(FACTORIES))}")
    timeouts = Timeouts(connect=config.PROVIDER_CONNECT_TIMEOUT, read=config.PROVIDER_READ_TIMEOUT)
    # One kept-alive connection per send in flight: with fewer, the sends beyond them would each
    # open a connection (a TLS handshake to a real provider) and close it after one request.
    connections = getattr(config, "CELERY_WORKER_CONCURRENCY", DEFAULT_CONNECTIONS)
    return FACTORIES[name](config, timeouts, connections)
