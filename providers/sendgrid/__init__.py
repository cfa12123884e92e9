"""SendGrid: v3 mail send (sending.py) and the Signed Event Webhook (webhooks.py)."""

from ..http import Timeouts
from ..spec import ProviderSpec, Setting, WebhookSpec
from . import lookup, sending, webhooks


def _build(config, timeouts: Timeouts, connections: int) -> sending.SendGridProvider:
    return sending.SendGridProvider(
        api_key=config.SENDGRID_API_KEY, api_url=config.SENDGRID_API_URL, timeouts=timeouts, connections=connections
    )


def _build_lookup(config, timeouts: Timeouts) -> lookup.SendGridLookup:
    return lookup.SendGridLookup(api_key=config.SENDGRID_API_KEY, api_url=config.SENDGRID_API_URL, timeouts=timeouts)


SPEC = ProviderSpec(
    name=sending.NAME,
    build=_build,
    settings=(
        Setting("SENDGRID_API_KEY", ""),
        Setting("SENDGRID_API_URL", "https://api.sendgrid.com"),
        # The Signed Event Webhook's verification key, base64 as SendGrid shows it: a key that is
        # not P-256 stops the service at start rather than refuse every event later.
        Setting("SENDGRID_WEBHOOK_PUBLIC_KEY", "", check=lambda value: value and webhooks.public_key(value)),
    ),
    limits=sending.LIMITS,
    check_limits=sending.check_limits,
    # 403 for anything not signed with the configured key.
    webhook=WebhookSpec(
        key_setting="SENDGRID_WEBHOOK_PUBLIC_KEY",
        refusal_status=403,
        read=webhooks.read,
        # SendGrid posts events in batches it closes at 768 kB; room to spare, nothing like the API's cap.
        max_body_bytes=2 * 1024 * 1024,
        signature_headers=(webhooks.SIGNATURE_HEADER, webhooks.TIMESTAMP_HEADER),
    ),
    lookup=_build_lookup,
)
