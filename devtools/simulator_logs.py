"""The provider simulator's memory of what it accepted, as the providers let it be read back and
pushed: SendGrid's Email Logs API and Mailgun's Events API (what providers/*/lookup.py ask), and
signed webhooks after an acceptance (SendGrid's `processed`, Mailgun's `accepted`), posted to a
URL the test sets, signed with keys it gives, as the real providers post them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MESSAGE_ID_KEY = "mailer_message_id"  # providers/base.py's; devtools imports nothing of the service
SENDGRID_LOGS_PATH = re.compile(r"/v3/logs")
SENDGRID_LOG_PATH = re.compile(r"/v3/logs/(?P<id>[^/]+)")
MAILGUN_EVENTS_PATH = re.compile(r"/v3/(?P<domain>[^/]+)/events")
WEBHOOKS_PATH = re.compile(r"/_simulator/webhooks/(?P<provider>sendgrid|mailgun)")
LOGS_PATH = "/_simulator/logs"

_QUERY_FIELD = re.compile(
    r'(?P<field>to_email|subject|sg_message_id_created_at)\s*(?P<op>=|>=|<=|>|<)\s*(?:TIMESTAMP\s*)?(?P<value>"(?:[^"\\]|\\.)*")'
)


def visible(entry: dict, lag_seconds: float, now: float) -> bool:
    """An accepted request, once the provider's log has caught up with it."""
    return entry["accepted"] and entry["received_at"] + lag_seconds <= now


def sendgrid_custom_args(entry: dict) -> dict:
    personalizations = (entry.get("json") or {}).get("personalizations") or [{}]
    return personalizations[0].get("custom_args") or {}


def sendgrid_search(entries: list[dict], query: str, limit: int) -> list[dict]:
    """POST /v3/logs: the accepted messages the query's to_email, subject and creation range match."""
    conditions = [(m["field"], m["op"], json.loads(m["value"])) for m in _QUERY_FIELD.finditer(query)]
    found = []
    for entry in entries:
        payload = entry.get("json") or {}
        created = datetime.fromtimestamp(entry["received_at"], UTC)
        row = {
            "sg_message_id": entry["provider_message_id"],
            "from_email": (payload.get("from") or {}).get("email", ""),
            "to_email": ((payload.get("personalizations") or [{}])[0].get("to") or [{}])[0].get("email", ""),
            "subject": payload.get("subject", ""),
            "status": "processed",
            "sg_message_id_created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if all(_matches(row, created, field, op, value) for field, op, value in conditions):
            found.append(row)
    return found[:limit]


def _matches(row: dict, created: datetime, field: str, op: str, value: str) -> bool:
    if field == "to_email":  # SendGrid keeps addresses in lower case
        return row[field].lower() == value.lower()
    if field != "sg_message_id_created_at":
        return row[field] == value
    bound = datetime.fromisoformat(value.replace("Z", "+00:00"))
    created = created.replace(microsecond=0)
    return {"=": created == bound, ">=": created >= bound, "<=": created <= bound, ">": created > bound, "<": created < bound}[op]


def sendgrid_detail(entry: dict) -> dict:
    """GET /v3/logs/{sg_message_id}: one message, our custom_args as its unique_args."""
    payload = entry.get("json") or {}
    return {
        "sg_message_id": entry["provider_message_id"],
        "subject": payload.get("subject", ""),
        "status": "processed",
        "unique_args": sendgrid_custom_args(entry),
        "events": [{"event_name": "processed", "processed": datetime.fromtimestamp(entry["received_at"], UTC).isoformat()}],
    }


def mailgun_events(entries: list[dict], query: dict[str, list[str]]) -> dict:
    """GET /v3/<domain>/events: `accepted` events filtered on recipient, subject and begin/end."""
    first = {name: values[0] for name, values in query.items()}
    begin, end = float(first.get("begin", 0)), float(first.get("end", time.time() + 1))
    items = []
    for entry in entries:
        form = entry.get("form") or {}
        recipients = [address.strip().lower() for address in form.get("to", [])]
        subject = (form.get("subject") or [""])[0]
        if not begin <= entry["received_at"] <= end:
            continue
        if "recipient" in first and not any(first["recipient"].lower() in r for r in recipients):
            continue
        if "subject" in first and subject != first["subject"]:
            continue
        if first.get("event", "accepted") != "accepted":
            continue
        variables = {name[2:]: values[0] for name, values in form.items() if name.startswith("v:")}
        items.append(
            {
                "id": uuid.uuid5(uuid.NAMESPACE_URL, entry["provider_message_id"]).hex,
                "event": "accepted",
                "timestamp": entry["received_at"],
                "recipient": recipients[0] if recipients else "",
                "message": {"headers": {"message-id": entry["provider_message_id"].strip("<>"), "subject": subject}},
                "user-variables": variables,
            }
        )
    limit = int(first.get("limit", 300))
    return {"items": items[:limit], "paging": {}}


# --- webhooks ---------------------------------------------------------------------------------


def processed_webhook(provider: str, entry: dict, config: dict) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the webhook the provider posts once it has taken the message."""
    if provider == "sendgrid":
        payload = entry.get("json") or {}
        event = {
            "email": ((payload.get("personalizations") or [{}])[0].get("to") or [{}])[0].get("email", ""),
            "timestamp": int(time.time()),
            "event": "processed",
            "sg_event_id": uuid.uuid4().hex,
            "sg_message_id": entry["provider_message_id"],
            **sendgrid_custom_args(entry),
        }
        body = json.dumps([event]).encode()
        return body, _sendgrid_signature(config["private_key_pem"], body)
    form = entry.get("form") or {}
    stamp, token = str(int(time.time())), secrets.token_hex(25)
    signature = hmac.new(config["signing_key"].encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    event_data = {
        "id": secrets.token_urlsafe(16),
        "timestamp": time.time(),
        "event": "accepted",
        "recipient": (form.get("to") or [""])[0].strip().lower(),
        "message": {"headers": {"message-id": entry["provider_message_id"].strip("<>")}},
        "user-variables": {name[2:]: values[0] for name, values in form.items() if name.startswith("v:")},
    }
    body = json.dumps({"signature": {"timestamp": stamp, "token": token, "signature": signature}, "event-data": event_data})
    return body.encode(), {}


def _sendgrid_signature(private_key_pem: str, body: bytes) -> dict[str, str]:
    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    stamp = str(int(time.time()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


def post_webhook_later(provider: str, entry: dict, config: dict) -> None:
    """Post the signed event after the configured delay, from a thread of its own (as a provider
    posts from its own machines, whatever became of the request that sent the mail)."""

    def post() -> None:
        time.sleep(config.get("delay_ms", 0) / 1000)
        body, headers = processed_webhook(provider, entry, config)
        request = urllib.request.Request(
            config["url"], data=body, headers={"Content-Type": "application/json", **headers}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                entry.setdefault("webhooks", []).append(answer.status)
        except OSError as exc:  # a refusal (HTTPError) or the API not answering: recorded, not retried
            entry.setdefault("webhooks", []).append(getattr(exc, "code", None) or repr(exc))

    threading.Thread(target=post, daemon=True).start()
