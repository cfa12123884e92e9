"""How every provider's failures are classified (providers/http.py), from real HTTP exchanges with
the simulator: transient (retry the same provider), provider-level and message-level (next
provider at once)."""

import json
import socket

import pytest

from providers.base import Address, MessageRejected, OutboundMessage, ProviderLevelError, TransientError
from providers.http import Timeouts
from providers.mailgun.sending import MailgunProvider
from providers.sendgrid.sending import SendGridProvider

from .support import SIMULATOR_URL

MESSAGE = OutboundMessage(message_id="m", sender=Address("s@example.com"), to=(Address("t@example.com"),), subject="S", text="T")
FAST = Timeouts(connect=1, read=1)


def provider_at(name: str, url: str = SIMULATOR_URL):
    if name == "sendgrid":
        return SendGridProvider("key", url, FAST)
    return MailgunProvider("key", "test.example.com", url, FAST)


PROVIDERS = ["sendgrid", "mailgun"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    "behaviour,error_class,status,retry_after",
    [
        ({"status": 503}, TransientError, 503, None),
        ({"status": 500}, TransientError, 500, None),
        ({"status": 429, "retry_after": "7"}, TransientError, 429, 7.0),
        ({"status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}, TransientError, 429, 0.0),
        ({"status": 401}, ProviderLevelError, 401, None),
        ({"status": 403}, ProviderLevelError, 403, None),
        ({"status": 404}, ProviderLevelError, 404, None),
        ({"status": 408}, TransientError, 408, None),
        ({"status": 301}, ProviderLevelError, 301, None),  # not followed: a POST must not become a GET
        ({"status": 400}, MessageRejected, 400, None),
        ({"status": 413}, MessageRejected, 413, None),
        ({"status": 422}, MessageRejected, 422, None),
        ({"drop": True}, TransientError, None, None),
        ({"latency_ms": 1500}, TransientError, None, None),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else None,
)
def test_failures_are_classified(simulator, provider, behaviour, error_class, status, retry_after):
    simulator.behave(provider, **behaviour)
    with pytest.raises(error_class) as caught:
        provider_at(provider).send(MESSAGE)
    assert type(caught.value) is error_class
    assert caught.value.provider == provider
    assert caught.value.status_code == status
    assert caught.value.retry_after == retry_after
    if status:
        assert f"HTTP {status}" in caught.value.reason
        assert "simulated failure" in caught.value.reason  # the provider's own words, for the operator


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_refused_is_transient(provider):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(TransientError, match="connection failed"):
        provider_at(provider, f"http://127.0.0.1:{closed_port}").send(MESSAGE)


def test_a_key_that_cannot_go_in_a_header_is_a_provider_level_error(simulator):
    # SendGrid's key goes in a header as it is (Mailgun's is base64 inside Basic auth).
    broken = provider_at("sendgrid")
    broken.api_key = "key\nwith a line break"
    with pytest.raises(ProviderLevelError, match="request could not be made"):
        broken.send(MESSAGE)
    assert simulator.requests() == []
