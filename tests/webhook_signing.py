"""Webhook requests as SendGrid and Mailgun sign them, with keys generated for the test run."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from providers.sendgrid.webhooks import SIGNATURE_HEADER as SENDGRID_SIGNATURE_HEADER
from providers.sendgrid.webhooks import TIMESTAMP_HEADER as SENDGRID_TIMESTAMP_HEADER


class SendGridSigner:
    """An ECDSA P-256 key pair: the private half signs like SendGrid, the public half is what
    SendGrid's settings page shows (base64 DER) and goes into SENDGRID_WEBHOOK_PUBLIC_KEY."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        der = self.private_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        self.public_key_b64 = base64.b64encode(der).decode()
        # For the provider simulator, which signs the events it posts (devtools/simulator_logs.py).
        self.private_key_pem = self.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SENDGRID_SIGNATURE_HEADER: base64.b64encode(signature).decode(), SENDGRID_TIMESTAMP_HEADER: stamp}


def sendgrid_event(message_id: str, event: str = "delivered", email: str = "ann@example.com", **extra) -> dict:
    """One event as SendGrid posts it: our custom_args are top-level keys."""
    return {
        "email": email,
        "timestamp": int(time.time()),
        "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
        "event": event,
        "sg_event_id": extra.pop("sg_event_id", None) or uuid.uuid4().hex,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "mailer_message_id": message_id,
        **extra,
    }


def sendgrid_body(*events: dict) -> bytes:
    return json.dumps(list(events)).encode()


class MailgunSigner:
    def __init__(self):
        self.signing_key = secrets.token_hex(16)

    def signature(self, timestamp: int | None = None, token: str | None = None, key: str | None = None) -> dict:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        token = token or secrets.token_hex(25)
        digest = hmac.new((key or self.signing_key).encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
        return {"timestamp": stamp, "token": token, "signature": digest}

    def body(self, event_data: dict, **signature) -> bytes:
        return json.dumps({"signature": self.signature(**signature), "event-data": event_data}).encode()


def mailgun_event(message_id: str, event: str = "delivered", recipient: str = "ann@example.com", **extra) -> dict:
    """Mailgun's event-data: our v: variables come back as user-variables."""
    return {
        "id": extra.pop("id", None) or secrets.token_urlsafe(16),
        "timestamp": time.time(),
        "event": event,
        "recipient": recipient,
        "message": {"headers": {"message-id": "20261127.abc@test.example.com"}},
        "user-variables": {"mailer_message_id": message_id},
        **extra,
    }
