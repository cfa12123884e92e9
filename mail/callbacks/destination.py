"""Where a callback may go: the refusal of loopback, link-local, private, metadata and other
non-public addresses (server-side request forgery), unless an operator allowed a network.

Pure rules over a resolver that can be swapped. Every address the name resolves to must be
allowed, and the sender (mail/callbacks/sender.py) connects to the address checked here, never
resolving the name again: a name cannot answer once with a public address and then with a
private one."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str  # as the URL names it, for the Host header and TLS
    port: int
    target: str  # path and query
    address: str  # the checked address to connect to


@dataclass(frozen=True)
class Refused:
    reason: str


def parse_networks(text: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in text if item.strip())


def why_refused(address: IPAddress, allowed: tuple = ()) -> str | None:
    """None for an address a callback may reach; else what it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return None
    for kind, test in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local (cloud metadata)", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("not global", not address.is_global),
    ):
        if test:
            return f"{address} is a {kind} address"
    return None


def url_problem(url: str, allow_http: bool) -> str | None:
    """What is wrong with a URL's shape, before any name is resolved."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("https", "http"):
        return "the URL must be https"
    if parts.scheme == "http" and not allow_http:
        return "the URL must be https (plain http is allowed only when CALLBACK_ALLOW_HTTP is set)"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username or parts.password:
        return "the URL must not carry credentials"
    if port == 0:
        return "the URL's port is not valid"
    return None


Resolver = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    # IPv4 first: the connection goes to the first address, and many networks (an AWS VPC by
    # default) have no IPv6 route out.
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}, key=lambda a: (":" in a, a))


def check(url: str, *, allow_http: bool, allowed: tuple = (), resolver: Resolver = resolve) -> Destination | Refused:
    """The address to connect to for this URL, or why not."""
    problem = url_problem(url, allow_http)
    if problem:
        return Refused(problem)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        # The name as DNS, TLS and the Host header carry it: an internationalised one in IDNA.
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        return Refused(f"{parts.hostname} is not a valid host name")
    try:
        addresses = resolver(host, port)
    except (OSError, UnicodeError) as exc:
        return Refused(f"{parts.hostname} does not resolve ({exc.__class__.__name__})")
    if not addresses:
        return Refused(f"{parts.hostname} does not resolve")
    for text in addresses:
        reason = why_refused(ipaddress.ip_address(text.split("%")[0]), allowed)
        if reason:
            return Refused(f"{parts.hostname} resolves to {reason}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(scheme=parts.scheme, host=host, port=port, target=target, address=addresses[0])
