"""The sandbox: the provider that sends a sandbox key's mail (docs/api.md, "Sandbox keys").

It calls nobody. A recipient at SANDBOX_DOMAIN says how the send goes, so a client can test its
handling of each outcome: `delivered@`, `bounced@`, `complained@` and `failed@` (with a `+label`
allowed, `bounced+signup@`). Every other address is delivered. The answer comes at once, with the
events a real provider would report later by webhook, in the same vocabulary, so they take the
same path from there (mail/status.py): the same status changes, events and callbacks. Not in
providers/registry.py: live mail can never be routed here, and sandbox mail nowhere else."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from .base import MessageRejected, OutboundMessage, SendResult
from .events import DeliveryEvent, EventType

NAME = "sandbox"
# Under example.com, reserved for documentation (RFC 2606): mail a live key sends there goes nowhere.
SANDBOX_DOMAIN = "sandbox.example.com"

# The local part (before any +label) → the event each such recipient gets.
OUTCOMES = {
    "delivered": (EventType.DELIVERED, False, "250 delivered (sandbox)"),
    "bounced": (EventType.BOUNCED, True, "550 5.1.1 the mailbox does not exist (sandbox)"),
    "complained": (EventType.COMPLAINED, False, "the recipient marked it as spam (sandbox)"),
}
FAILED = "failed"


def magic_word(address: str) -> str:
    """`bounced` for bounced+label@SANDBOX_DOMAIN; "" for any other address."""
    local, _, domain = address.lower().rpartition("@")
    return local.partition("+")[0] if domain == SANDBOX_DOMAIN else ""


class SandboxProvider:
    name = NAME

    def send(self, message: OutboundMessage) -> SendResult:
        recipients = [address.email for address in (*message.to, *message.cc, *message.bcc)]
        if any(magic_word(address) == FAILED for address in recipients):
            raise MessageRejected(NAME, "refused: a recipient is failed@ the sandbox domain (sandbox)", status_code=400)
        provider_message_id = f"sandbox-{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        events = []
        for address in recipients:
            event_type, permanent, detail = OUTCOMES.get(magic_word(address), OUTCOMES["delivered"])
            events.append(
                DeliveryEvent(
                    provider=NAME,
                    type=event_type,
                    message_id=message.message_id,
                    event_id=f"{provider_message_id}-{address.lower()}",
                    recipient=address,
                    occurred_at=now,
                    permanent=permanent,
                    detail=detail,
                )
            )
        return SendResult(NAME, provider_message_id, 202, events=tuple(events))


SANDBOX = SandboxProvider()
