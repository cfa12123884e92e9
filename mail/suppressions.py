"""The suppression lists, one per team: addresses that hard-bounced or complained, or that the team
added itself. New mail from the team to them is refused at accept time unless the client
overrides it per message. A bounce or complaint of a message suppresses its recipient for the
message's team: teams share the provider accounts, but one team's list is its own to read and edit
(the suppressions API, mail/api/suppressions.py)."""

from __future__ import annotations

import logging

from providers.base import OutboundMessage
from providers.events import DeliveryEvent, EventType

from .exceptions import RecipientsSuppressed, Suppressed
from .models import MAX_ADDRESS_LENGTH, Suppression

log = logging.getLogger(__name__)


def refuse_suppressed(message: OutboundMessage, team_id: int) -> None:
    """Raise RecipientsSuppressed when any of to, cc and bcc is on the team's list (in any case)."""
    by_field = {"to": message.to, "cc": message.cc, "bcc": message.bcc}
    wanted = {address.email.lower() for group in by_field.values() for address in group}
    found = {s.address: s for s in Suppression.objects.filter(team_id=team_id, address__in=wanted)}
    if found:
        refused = {name: [a.email for a in group if a.email.lower() in found] for name, group in by_field.items()}
        raise RecipientsSuppressed(
            {name: addresses for name, addresses in refused.items() if addresses},
            {address: Suppressed(s.get_reason_display().lower(), s.created_at.date()) for address, s in found.items()},
        )


def suppress_if_final(event: DeliveryEvent, message_id, team_id: int) -> bool:
    """Remember the recipient of a hard bounce or a complaint for the message's team; True when
    newly suppressed."""
    if event.type is EventType.COMPLAINED:
        reason = Suppression.Reason.COMPLAINT
    elif event.type is EventType.BOUNCED and event.permanent:
        reason = Suppression.Reason.HARD_BOUNCE
    else:
        return False
    if not event.recipient or len(event.recipient) > MAX_ADDRESS_LENGTH:
        return False  # nothing to remember, or no address anyone could send to (RFC 5321: 254)
    _, created = Suppression.objects.get_or_create(
        team_id=team_id,
        address=event.recipient.lower(),
        defaults={"reason": reason, "provider": event.provider, "message_id": message_id, "detail": event.detail},
    )
    if created:
        log.info("recipient suppressed", extra={"message_id": str(message_id), "reason": reason, "provider": event.provider})
    return created


def add_manual(team_id: int, address: str) -> tuple[Suppression, bool]:
    """Put a lower-cased address on the team's list by the client's own wish; (the row, whether it
    is new). An address already there keeps the reason it has (a complaint stays a complaint)."""
    return Suppression.objects.get_or_create(
        team_id=team_id, address=address.lower(), defaults={"reason": Suppression.Reason.MANUAL}
    )


def remove(team_id: int, address: str) -> bool:
    """Take an address off the team's list, whatever put it there; whether it was on it."""
    deleted, _ = Suppression.objects.filter(team_id=team_id, address=address.lower()).delete()
    return bool(deleted)
