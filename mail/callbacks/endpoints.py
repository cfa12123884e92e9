"""A client's endpoints: create, change, rotate the secret, test. The URL has been checked by the
caller (sender.check); it is checked again at every delivery."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import sender, signing
from .events import CallbackEvent, body_of
from .models import Endpoint


def create(api_key, url: str, event_types: list, description: str, enabled: bool) -> tuple[Endpoint, str]:
    """The new endpoint and its secret, in clear: the only time it is shown."""
    secret = signing.new_secret()
    endpoint = Endpoint.objects.create(
        api_key=api_key,
        url=url,
        event_types=list(event_types),
        description=description,
        enabled=enabled,
        secret=signing.seal(secret),
    )
    return endpoint, secret


def update(endpoint: Endpoint, **changes) -> bool:
    """Apply the changes; True when this re-enabled the endpoint (which then deserves a test)."""
    re_enabled = changes.get("enabled") is True and not endpoint.enabled
    for name, value in changes.items():
        setattr(endpoint, name, value)
    if re_enabled:
        endpoint.disabled_reason = ""
        endpoint.failing_since = None
    endpoint.updated_at = timezone.now()
    endpoint.save()
    return re_enabled


def rotate_secret(endpoint: Endpoint) -> str:
    """A new secret; the current one keeps signing for CALLBACK_SECRET_OVERLAP_SECONDS."""
    secret = signing.new_secret()
    with transaction.atomic():
        locked = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        locked.previous_secret = locked.secret
        locked.previous_secret_expires_at = timezone.now() + timedelta(seconds=settings.CALLBACK_SECRET_OVERLAP_SECONDS)
        locked.secret = signing.seal(secret)
        locked.updated_at = timezone.now()
        locked.save()
    endpoint.refresh_from_db()
    return secret


def send_test(endpoint: Endpoint) -> sender.Outcome:
    """A signed `webhook.test` event, sent now; nothing is recorded or retried."""
    event = CallbackEvent.test()
    body = body_of(event.to_wire())
    headers = signing.headers(event.event_id, body, signing.live_secrets(endpoint), timezone.now())
    headers["webhook-attempt"] = "1"
    return sender.post(endpoint.url, headers, body)
