"""SendGrid's Email Logs API (30 days of history on every account): POST /v3/logs filters on
`to_email`, `subject` and `sg_message_id_created_at`; GET /v3/logs/{sg_message_id} gives one
message's details, whose `unique_args` hold the custom_args we sent (our message id among them)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from ..base import MESSAGE_ID_KEY, ProviderLevelError, TransientError
from ..http import Timeouts, get, pooled_session, post
from ..lookup import MAX_CANDIDATES, AcceptanceQuery, Accepted
from .sending import NAME


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quoted(value: str) -> str:
    # The query language's strings are double-quoted; JSON's escaping of quotes and backslashes is its own.
    return json.dumps(value, ensure_ascii=False)


def query_text(query: AcceptanceQuery) -> str:
    return " AND ".join(
        [
            f"to_email = {_quoted(query.recipient)}",
            f"subject = {_quoted(query.subject)}",
            f'sg_message_id_created_at >= TIMESTAMP "{_timestamp(query.since)}"',
            f'sg_message_id_created_at <= TIMESTAMP "{_timestamp(query.until)}"',
        ]
    )


class SendGridLookup:
    name = NAME

    def __init__(self, api_key: str, api_url: str, timeouts: Timeouts):
        self.api_key = api_key
        self.base = api_url.rstrip("/") + "/v3/logs"
        self.timeouts = timeouts
        self.session = pooled_session(2)

    def find(self, query: AcceptanceQuery) -> Accepted | None:
        if not self.api_key:
            raise ProviderLevelError(self.name, "SENDGRID_API_KEY is not set")
        headers = {"Authorization": f"Bearer {self.api_key}"}
        found = post(
            self.name, self.session, self.base, self.timeouts, json={"query": query_text(query), "limit": 50}, headers=headers
        )
        candidates = _json(self.name, found).get("messages") or []
        for candidate in candidates[:MAX_CANDIDATES]:
            sg_message_id = str(candidate.get("sg_message_id", "")) if isinstance(candidate, dict) else ""
            if not sg_message_id:
                continue
            detail = _json(
                self.name, get(self.name, self.session, f"{self.base}/{sg_message_id}", self.timeouts, headers=headers)
            )
            arguments = detail.get("unique_args") or {}
            if isinstance(arguments, dict) and arguments.get(MESSAGE_ID_KEY) == query.message_id:
                return Accepted(self.name, sg_message_id)
        return None


def _json(provider: str, response) -> dict:
    try:
        body = response.json()
    except ValueError as exc:
        raise TransientError(provider, f"the log API answered something that is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise TransientError(provider, "the log API answered JSON that is not an object")
    return body
