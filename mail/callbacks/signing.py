"""Endpoint secrets: made, kept encrypted, and used to sign the Standard Webhooks way.

A secret is `whsec_` + base64 of 32 random bytes, as the Standard Webhooks libraries read it. It
is stored encrypted with Fernet under CALLBACK_ENCRYPTION_KEY (or a key derived from SECRET_KEY),
so a dump of the database alone does not reveal it. During a rotation's overlap every delivery
carries a signature by each live secret, space-separated, as the specification allows: a client
verifying with either one succeeds."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _fernet() -> Fernet:
    material = settings.CALLBACK_ENCRYPTION_KEY or settings.SECRET_KEY
    # Fernet takes 32 url-safe base64 bytes; any string of the operator's becomes one.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"mailer-callbacks:{material}".encode()).digest()))


def seal(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError("an endpoint secret does not decrypt: was CALLBACK_ENCRYPTION_KEY or SECRET_KEY changed?") from exc


def live_secrets(endpoint) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one during
    its overlap."""
    found = [unseal(endpoint.secret)]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > timezone.now():
        found.append(unseal(endpoint.previous_secret))
    return found


def headers(event_id: str, body: str, secrets_to_sign_with: list[str], at: datetime) -> dict[str, str]:
    signatures = " ".join(Webhook(secret).sign(event_id, at, body) for secret in secrets_to_sign_with)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
