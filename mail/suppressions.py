"""The suppression list: addresses that hard-bounced or complained. New mail to them is refused
at accept time unless the client overrides it per message. Global, not per API key: every key
sends through the same provider accounts, whose reputation each bounce and complaint costs."""

from __future__ import annotations

import logging

from providers.base import OutboundMessage
from providers.events import DeliveryEvent, EventType

from .exceptions import RecipientsSuppressed, Suppressed
from .models import MAX_ADDRESS_LENGTH, Suppression

log = logging.getLogger(__name__)


def refuse_suppressed(message: OutboundMessage) -> None:
    """Raise RecipientsSuppressed when any of to, cc and bcc is on the list (in any case)."""
    by_field = {"to": message.to, "cc": message.cc, "bcc": message.bcc}
    wanted = {address.email.lower() for group in by_field.values() for address in group}
    found = {s.address: s for s in Suppression.objects.filter(address__in=wanted)}
    if found:
        refused = {name: [a.email for a in group if a.email.lower() in found] for name, group in by_field.items()}
        raise RecipientsSuppressed(
            {name: addresses for name, addresses in refused.items() if addresses},
            {address: Suppressed(s.get_reason_display().lower(), s.created_at.date()) for address, s in found.items()},
        )


def suppress_if_final(event: DeliveryEvent, message_id) -> bool:
    """Remember the recipient of a hard bounce or a complaint; True when newly suppressed."""
    if event.type is EventType.COMPLAINED:
        reason = Suppression.Reason.COMPLAINT
    elif event.type is EventType.BOUNCED and event.permanent:
        reason = Suppression.Reason.HARD_BOUNCE
    else:
        return False
    if not event.recipient or len(event.recipient) > MAX_ADDRESS_LENGTH:
        return False  # nothing to remember, or no address anyone could send to (RFC 5321: 254)
    _, created = Suppression.objects.get_or_create(
        address=event.recipient.lower(),
        defaults={"reason": reason, "provider": event.provider, "message_id": message_id, "detail": event.detail},
    )
    if created:
        log.info("recipient suppressed", extra={"message_id": str(message_id), "reason": reason, "provider": event.provider})
    return created
