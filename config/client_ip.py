"""The client's IP address, taken correctly behind reverse proxies.

Only a request whose direct peer (REMOTE_ADDR) is a trusted proxy may name another client
address, and then X-Forwarded-For is read **from the right**, skipping trusted proxies: the
first untrusted hop is the client. The left-most entry is whatever the client wrote and is
never trusted. ``KINGUARD_TRUSTED_PROXIES`` lists proxy addresses or networks (CIDR).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _is_trusted(address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def client_ip(request: HttpRequest) -> str | None:
    """Return the client IP for throttling and audit (never an attacker-chosen value)."""
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    if peer is None:
        return None
    trusted = _networks(tuple(getattr(settings, "KINGUARD_TRUSTED_PROXIES", ())))
    if not trusted or not _is_trusted(peer, trusted):
        return str(peer)
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            return str(peer)  # a malformed hop: do not guess further left
        if not _is_trusted(address, trusted):
            return str(address)
    return str(peer)


def axes_client_ip(request: HttpRequest) -> str | None:
    """``AXES_CLIENT_IP_CALLABLE``: the same rule for login throttling."""
    return client_ip(request)
