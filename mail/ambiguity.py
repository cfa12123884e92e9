"""Ambiguous attempts: resolved, not repeated.

A worker that dies between calling a provider and writing what it answered leaves the message
claimed; the worker that takes the expired claim over cannot know whether the provider has the
mail (mail/claims.py records the attempt as `ambiguous`). Neither SendGrid nor Mailgun takes an
idempotency key, so sending at once could send it twice. Instead, before anything is sent again:

1. the providers' own events: a webhook event for this message (processed, delivered, bounced,
   ...) that mail/status.py recorded proves that provider accepted it;
2. the providers' log APIs, where a provider has one (providers/lookup.py), bounded by their
   timeouts and by AMBIGUOUS_LOOKUPS_PER_MINUTE per provider and process;
3. neither says "accepted": the message waits (an SQS delay of AMBIGUOUS_RECHECK_SECONDS, the
   claim given back) and asks again, until AMBIGUOUS_GRACE_SECONDS after the attempt began.
   Only then is it sent again, with a `resent` event that says why.

`resolve` decides; mail/decisions.py carries the decision out, like every other."""

from __future__ import annotations

import logging
import math
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from providers.base import OutboundMessage, ProviderError, SendResult
from providers.lookup import AcceptanceQuery, Accepted

from . import claim_check, claims
from .claims import Claim
from .connections import let_go_of_connection
from .decisions import Decision, Drop, Hold, Sent
from .delivery_task import DeliveryTask
from .models import MessageEvent
from .runtime import RUNTIME
from .status import PROVIDER_EVENT_TYPES

log = logging.getLogger("mail.delivery")

# A log's clock and ours differ, and the attempt began a little before its claim was written.
CLOCK_SLACK = timedelta(seconds=60)


def resolve(task: DeliveryTask, claim: Claim, provider: str, outbound: OutboundMessage) -> Decision | None:
    """What to do about a claimed message whose earlier attempt is ambiguous: a decision, or None
    when it is to be sent again now (the `resent` event is written here, as a fact, first)."""
    stored = claim_check.is_pointer(task.payload)
    reported = _reported_by_events(task.message_id)
    if reported is not None:
        result = SendResult(reported.provider, "", 0)
        return Sent(claim, result, stored, f"not sent again: {reported.provider} reported a `{reported.type}` event for it")
    began = claim.ambiguous_since
    accepted, unanswered = _look_up(outbound, began)
    if accepted is not None:
        result = SendResult(accepted.provider, accepted.provider_message_id, 0)
        return Sent(claim, result, stored, f"not sent again: found accepted in {accepted.provider}'s log")
    remaining = (began + timedelta(seconds=settings.AMBIGUOUS_GRACE_SECONDS) - timezone.now()).total_seconds()
    if remaining > 0:
        delay = max(1, math.ceil(min(settings.AMBIGUOUS_RECHECK_SECONDS, remaining)))
        fields = {"ambiguous_since": began.isoformat(), "unanswered": ",".join(unanswered)}
        why = "an earlier attempt may have been accepted; asking the providers again later"
        return Hold(claim, task.again(delay, provider=provider), why, "ambiguous", fields=fields)
    asked = ", ".join(sorted(set(settings.MAIL_PROVIDERS) - set(unanswered))) or "none could be asked"
    detail = (
        f"no provider reported the ambiguous attempt within {settings.AMBIGUOUS_GRACE_SECONDS} s "
        f"(events: none; log lookups: {asked}"
        + (f"; could not ask: {', '.join(unanswered)}" if unanswered else "")
        + "); sending again"
    )
    if not claims.resend_after_ambiguity(claim, detail):
        return Drop("the claim was taken over while resolving an ambiguous attempt", logging.ERROR)
    log.warning("ambiguous attempt unresolved within the grace period; sending again", extra={"message_id": task.message_id})
    return None


def _reported_by_events(message_id: str) -> MessageEvent | None:
    return (
        MessageEvent.objects.filter(message_id=message_id, type__in=PROVIDER_EVENT_TYPES)
        .only("provider", "type")
        .order_by("created_at")
        .first()
    )


def _look_up(outbound: OutboundMessage, began) -> tuple[Accepted | None, list[str]]:
    """The first provider's record of the message, and the providers that could not be asked
    (no log API, over their rate, or failing)."""
    let_go_of_connection()  # the lookups are slow I/O; no pooled connection is held over them
    recipient = outbound.to[0].email.lower() if outbound.to else ""
    query = AcceptanceQuery(
        message_id=outbound.message_id,
        recipient=recipient,
        subject=outbound.subject,
        since=began - CLOCK_SLACK,
        until=timezone.now() + CLOCK_SLACK,
    )
    unanswered = []
    for name in settings.MAIL_PROVIDERS:
        if not RUNTIME.can_look_up(name):
            unanswered.append(name)
            continue
        lookup = RUNTIME.lookup(name)
        if lookup is None:
            unanswered.append(name)  # over its rate for now
            continue
        try:
            accepted = lookup.find(query)
        except ProviderError as error:
            log.info(
                "could not look an ambiguous attempt up",
                extra={"message_id": outbound.message_id, "provider": name, "error_kind": error.kind},
            )
            unanswered.append(name)
            continue
        if accepted is not None:
            return accepted, unanswered
    return None, unanswered
