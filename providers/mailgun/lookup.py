"""Mailgun's Events API: GET /v3/<domain>/events filters on `recipient`, `subject`, `event` and a
time range (`begin`, `end`), not on our variables; an `accepted` event's `user-variables` hold
the v: variables we sent, our message id among them."""

from __future__ import annotations

from ..base import MESSAGE_ID_KEY, ProviderLevelError, TransientError
from ..http import Timeouts, get, pooled_session
from ..lookup import MAX_CANDIDATES, AcceptanceQuery, Accepted
from .sending import NAME


class MailgunLookup:
    name = NAME

    def __init__(self, api_key: str, domain: str, api_url: str, timeouts: Timeouts):
        self.api_key = api_key
        self.domain = domain
        self.url = f"{api_url.rstrip('/')}/v3/{domain}/events"
        self.timeouts = timeouts
        self.session = pooled_session(2)

    def find(self, query: AcceptanceQuery) -> Accepted | None:
        if not (self.api_key and self.domain):
            raise ProviderLevelError(self.name, "MAILGUN_API_KEY and MAILGUN_DOMAIN must both be set")
        params = {
            "event": "accepted",
            "recipient": query.recipient,
            "subject": query.subject,
            "begin": f"{query.since.timestamp():.3f}",
            "end": f"{query.until.timestamp():.3f}",
            "ascending": "yes",
            "limit": str(MAX_CANDIDATES),
        }
        response = get(self.name, self.session, self.url, self.timeouts, params=params, auth=("api", self.api_key))
        try:
            items = response.json().get("items") or []
        except (ValueError, AttributeError) as exc:
            raise TransientError(self.name, f"the events API answered something unreadable: {exc!r}") from exc
        for item in items[:MAX_CANDIDATES]:
            variables = item.get("user-variables") if isinstance(item, dict) else None
            if isinstance(variables, dict) and variables.get(MESSAGE_ID_KEY) == query.message_id:
                headers = (item.get("message") or {}).get("headers") or {}
                return Accepted(self.name, str(headers.get("message-id", "")))
        return None
