"""Mailgun: the messages API (sending.py) and its signed webhooks (webhooks.py)."""

from ..http import Timeouts
from ..spec import ProviderSpec, Setting, WebhookSpec
from . import lookup, sending, webhooks


def _build(config, timeouts: Timeouts, connections: int) -> sending.MailgunProvider:
    return sending.MailgunProvider(
        api_key=config.MAILGUN_API_KEY,
        domain=config.MAILGUN_DOMAIN,
        api_url=config.MAILGUN_API_URL,
        timeouts=timeouts,
        connections=connections,
    )


def _build_lookup(config, timeouts: Timeouts) -> lookup.MailgunLookup:
    return lookup.MailgunLookup(
        api_key=config.MAILGUN_API_KEY, domain=config.MAILGUN_DOMAIN, api_url=config.MAILGUN_API_URL, timeouts=timeouts
    )


SPEC = ProviderSpec(
    name=sending.NAME,
    build=_build,
    settings=(
        Setting("MAILGUN_API_KEY", ""),
        Setting("MAILGUN_DOMAIN", ""),
        # https://api.eu.mailgun.net for the EU region.
        Setting("MAILGUN_API_URL", "https://api.mailgun.net"),
        Setting("MAILGUN_WEBHOOK_SIGNING_KEY", ""),
    ),
    limits=sending.LIMITS,
    check_limits=sending.check_limits,
    # 406 for a bad, stale or replayed signature: Mailgun retries other refusals, and a forged
    # request must not be retried.
    webhook=WebhookSpec(
        key_setting="MAILGUN_WEBHOOK_SIGNING_KEY",
        refusal_status=406,
        read=webhooks.read,
        # One event per request: its event-data, our metadata (at most 8 kB) and some message headers.
        # The signature is inside the JSON, so this cap is also what an unsigned request can make us parse.
        max_body_bytes=256 * 1024,
    ),
    lookup=_build_lookup,
)
