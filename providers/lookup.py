"""Asking a provider whether it accepted a message: the neutral side of its log API.

A send whose outcome we never heard (the worker died between the request and our `sent` write)
is *ambiguous*: the provider may have the mail. Neither SendGrid nor Mailgun takes an
idempotency key, so before sending again the core (mail/ambiguity.py) asks each provider that
can look a message up. A provider folder that can declares a `lookup` in its ProviderSpec; one
that cannot (SES has no per-message log API; its events come through SNS) declares none.

The log APIs cannot filter on the variables we send, so a query names what they can filter on
(the recipient, the subject, a time range) and each lookup matches its candidates back by the
id we sent in the provider's custom variables. Every failure is a ProviderError classified by
providers/http.py: the caller takes it for "could not tell", never for "not accepted"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class AcceptanceQuery:
    message_id: str  # ours, as sent in the provider's custom variables
    recipient: str  # the first `to` address, lower case
    subject: str
    since: datetime  # aware; the ambiguous attempt began after this
    until: datetime


@dataclass(frozen=True)
class Accepted:
    """The provider's own record of having taken the message."""

    provider: str
    provider_message_id: str


class Lookup(Protocol):
    name: str

    def find(self, query: AcceptanceQuery) -> Accepted | None:
        """The provider's record of the message, or None when its log has none (yet: a log lags
        by seconds). Raises ProviderError when the provider could not be asked."""
        ...


# At most this many candidates (same recipient, subject and time range) are matched back one by
# one: a burst of identical mails to one address is the only way to have more, and asking for
# each would spend the provider's rate limit on one message.
MAX_CANDIDATES = 5
