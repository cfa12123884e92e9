"""The providers' log APIs as providers/*/lookup.py ask them, against the provider simulator over
HTTP: a mail the provider accepted is found by the id we sent, nothing else is, and a lookup that
cannot be made is a classified ProviderError, never a "not accepted"."""

from datetime import UTC, datetime, timedelta

import pytest

from devtools.net import free_port
from providers.base import Address, OutboundMessage, ProviderLevelError, TransientError
from providers.http import Timeouts
from providers.lookup import AcceptanceQuery
from providers.mailgun.lookup import MailgunLookup
from providers.mailgun.sending import MailgunProvider
from providers.sendgrid.lookup import SendGridLookup
from providers.sendgrid.sending import SendGridProvider

from .support import SIMULATOR_URL

TIMEOUTS = Timeouts(connect=1, read=3)


def outbound(message_id: str, subject: str = "Your order") -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id, sender=Address("shop@example.com"), to=(Address("Ann@Example.com"),), subject=subject, text="hi"
    )


def query_for(message: OutboundMessage) -> AcceptanceQuery:
    now = datetime.now(UTC)
    return AcceptanceQuery(
        message_id=message.message_id,
        recipient=message.to[0].email.lower(),
        subject=message.subject,
        since=now - timedelta(minutes=1),
        until=now + timedelta(minutes=1),
    )


CLIENTS = {
    "sendgrid": (
        lambda url: SendGridProvider("key", url, TIMEOUTS),
        lambda url, key="key": SendGridLookup(key, url, TIMEOUTS),
    ),
    "mailgun": (
        lambda url: MailgunProvider("key", "sandbox.local", url, TIMEOUTS),
        lambda url, key="key": MailgunLookup(key, "sandbox.local", url, TIMEOUTS),
    ),
}


@pytest.mark.parametrize("provider", CLIENTS)
def test_an_accepted_message_is_found_by_our_id_and_no_other_is(provider, simulator):
    sender, lookup = CLIENTS[provider]
    # Two mails alike in recipient and subject: the lookup tells them apart by the id we sent.
    first, twin = outbound("00000000-0000-4000-8000-000000000001"), outbound("00000000-0000-4000-8000-000000000002")
    sent = sender(SIMULATOR_URL).send(first)
    sender(SIMULATOR_URL).send(twin)

    found = lookup(SIMULATOR_URL).find(query_for(first))
    assert found is not None and found.provider == provider
    assert found.provider_message_id == sent.provider_message_id
    never_sent = outbound("00000000-0000-4000-8000-000000000003")
    assert lookup(SIMULATOR_URL).find(query_for(never_sent)) is None
    other_subject = outbound(first.message_id, subject="Something else")
    assert lookup(SIMULATOR_URL).find(query_for(other_subject)) is None


@pytest.mark.parametrize("provider", CLIENTS)
def test_a_log_that_has_not_caught_up_finds_nothing_yet(provider, simulator):
    sender, lookup = CLIENTS[provider]
    message = outbound("00000000-0000-4000-8000-000000000004")
    sender(SIMULATOR_URL).send(message)
    simulator.log_lag(60_000)
    assert lookup(SIMULATOR_URL).find(query_for(message)) is None
    simulator.log_lag(0)
    assert lookup(SIMULATOR_URL).find(query_for(message)) is not None


@pytest.mark.parametrize("provider", CLIENTS)
def test_a_lookup_that_cannot_be_made_is_a_classified_error(provider, simulator):
    _, lookup = CLIENTS[provider]
    message = outbound("00000000-0000-4000-8000-000000000005")
    with pytest.raises(ProviderLevelError):
        lookup(SIMULATOR_URL, key="").find(query_for(message))  # no key configured
    with pytest.raises(TransientError, match="connection failed"):
        lookup(f"http://127.0.0.1:{free_port()}").find(query_for(message))  # nobody listening
