"""Provider names (as used in MAIL_PROVIDERS) to provider classes and their configuration."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from .base import OutboundMessage, SendResult
from .http import Timeouts
from .mailgun import MailgunProvider
from .sendgrid import SendGridProvider


class Provider(Protocol):
    name: str

    def send(self, message: OutboundMessage) -> SendResult: ...


def _sendgrid(config: Any, timeouts: Timeouts) -> Provider:
    return SendGridProvider(api_key=config.SENDGRID_API_KEY, api_url=config.SENDGRID_API_URL, timeouts=timeouts)


def _mailgun(config: Any, timeouts: Timeouts) -> Provider:
    return MailgunProvider(
        api_key=config.MAILGUN_API_KEY, domain=config.MAILGUN_DOMAIN, api_url=config.MAILGUN_API_URL, timeouts=timeouts
    )


FACTORIES: dict[str, Callable[[Any, Timeouts], Provider]] = {
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
}


def build_provider(name: str, config: Any) -> Provider:
    """Build the named provider from a settings-like object with the DESIGN §5 names as attributes."""
    if name not in FACTORIES:
        raise KeyError(f"unknown mail provider {name!r}; known: {', '.join(sorted(FACTORIES))}")
    timeouts = Timeouts(connect=config.PROVIDER_CONNECT_TIMEOUT, read=config.PROVIDER_READ_TIMEOUT)
    return FACTORIES[name](config, timeouts)
