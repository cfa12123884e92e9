"""Who a request came from, the one way the service reads it, and whether that address is on a
network allow-list: the admin login's lockout (mail/admin_login.py) and an API key's allow-list
(mail/api/auth.py, mail/keys.py) both ask here."""

import ipaddress
from collections.abc import Iterable

from django.conf import settings


def client_address(request) -> str:
    """The address a request came from. Behind TRUSTED_PROXY_COUNT proxies that each append to
    X-Forwarded-For (the ALB appends the address it saw), the entry that many from the right end,
    which no client can forge; with none, the peer's own address. A client's own X-Forwarded-For
    is never believed: it would let an attacker pick a fresh address per guess, or claim one on a
    key's allow-list."""
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


def normalised_networks(networks: Iterable[str]) -> list[str]:
    """Each address or CIDR network in its canonical form ("10.0.0.0/8"); ValueError names a bad one.
    Host bits are allowed ("10.1.2.3/8" is 10.0.0.0/8): what was meant is plain."""
    normalised = []
    for network in networks:
        try:
            normalised.append(str(ipaddress.ip_network(network.strip(), strict=False)))
        except ValueError as exc:
            raise ValueError(f"{network!r} is not an IP address or CIDR network") from exc
    return normalised


def address_allowed(address: str, networks: list[str]) -> bool:
    """Whether a client at `address` may use a key limited to `networks` (none: anywhere)."""
    if not networks:
        return True
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False  # no address we can place is on any list
    if client.version == 6 and client.ipv4_mapped:
        client = client.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return any(client in ipaddress.ip_network(network) for network in networks)
