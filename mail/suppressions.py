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


def wanted_for(message: OutboundMessage, team_id: int) -> set[tuple[int, str]]:
    """The (team id, lower-cased address) pairs a check of this message looks up."""
    return {(team_id, address.email.lower()) for address in (*message.to, *message.cc, *message.bcc)}


def refusal_for(
    message: OutboundMessage, team_id: int, suppressed: dict[tuple[int, str], Suppression]
) -> RecipientsSuppressed | None:
    """The refusal of a message any of whose to, cc and bcc is on its team's list (in any case),
    given the suppressions found among wanted_for's pairs (mail/accept_sql.py look); None when none is."""
    by_field = {"to": message.to, "cc": message.cc, "bcc": message.bcc}
    found = {pair[1]: row for pair in wanted_for(message, team_id) if (row := suppressed.get(pair)) is not None}
    if not found:
        return None
    refused = {name: [a.email for a in group if a.email.lower() in found] for name, group in by_field.items()}
    return RecipientsSuppressed(
        {name: addresses for name, addresses in refused.items() if addresses},
        {address: Suppressed(row.get_reason_display().lower(), row.created_at.date()) for address, row in found.items()},
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
