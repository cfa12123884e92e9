"""Which address the admin login lockout counts (mail/client_address.py, also read by API keys' allow-lists): the peer's
own without a proxy, whatever X-Forwarded-For a client sends; behind the ALB, the address the
ALB appended, not one a client put in front of it."""

from django.test import RequestFactory, override_settings

from mail.client_address import client_address


def request(forwarded_for: str | None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded_for} if forwarded_for is not None else {}
    return RequestFactory().post("/admin/login/", REMOTE_ADDR="10.0.0.9", **headers)


@override_settings(TRUSTED_PROXY_COUNT=0)
def test_without_a_proxy_a_client_sent_forwarded_for_is_not_believed():
    assert client_address(request("203.0.113.5")) == "10.0.0.9"
    assert client_address(request(None)) == "10.0.0.9"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_the_alb_the_address_it_appended_counts():
    assert client_address(request("198.51.100.7")) == "198.51.100.7"
    # A client's own header arrives first; the ALB appends what it saw last.
    assert client_address(request("203.0.113.5, 198.51.100.7")) == "198.51.100.7"
    assert client_address(request(None)) == "10.0.0.9"  # the ALB's own health checks
