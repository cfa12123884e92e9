"""A throwaway provider for tests/test_new_provider.py, written as any provider folder would be
(providers/spec.py) and kept in the test suite. No Django here: a worker process imports it and
registers it before its settings are read."""

import hashlib
import hmac
import json
from pathlib import Path

from providers.base import MessageRejected, OutboundMessage, SendResult
from providers.events import DeliveryEvent, EventType, WebhookBatch, WebhookRefused
from providers.spec import Limits, ProviderSpec, Setting, WebhookSpec

NAME = "postcard"
LIMITS = Limits(recipients=2, tags=3, tag_chars=128, reserved_header_prefixes=("x-postcard-",))


class Postcard:
    """Sends by writing the message to a folder, one JSON file per message."""

    name = NAME

    def __init__(self, outbox: str):
        self.outbox = Path(outbox)

    def send(self, message: OutboundMessage) -> SendResult:
        check_limits(message)
        (self.outbox / f"{message.message_id}.json").write_text(json.dumps(message.to_payload()))
        return SendResult(NAME, f"card-{message.message_id[:8]}", 200)


def check_limits(message: OutboundMessage) -> None:
    if len(message.to) + len(message.cc) + len(message.bcc) > LIMITS.recipients:
        raise MessageRejected(NAME, f"a postcard has room for {LIMITS.recipients} recipients", field="to")


def read_webhook(body: bytes, headers, key: str, max_age_seconds: int, now: float) -> WebhookBatch:
    expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("X-Postcard-Signature", "")):
        raise WebhookRefused("the signature does not match")
    event = json.loads(body)
    return WebhookBatch(
        events=(DeliveryEvent(NAME, EventType.DELIVERED, event["id"], event["event_id"], event["to"], None),),
    )


SPEC = ProviderSpec(
    name=NAME,
    build=lambda config, timeouts, connections: Postcard(config.POSTCARD_OUTBOX),
    settings=(Setting("POSTCARD_OUTBOX", ""), Setting("POSTCARD_WEBHOOK_KEY", "")),
    limits=LIMITS,
    check_limits=check_limits,
    webhook=WebhookSpec(key_setting="POSTCARD_WEBHOOK_KEY", refusal_status=403, read=read_webhook),
)
