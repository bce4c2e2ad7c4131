"""Which address a request comes from, for the limits that count per address (docs/deployment.md,
"Fair use").

Without trusted proxies (DPM_TRUSTED_PROXIES empty) it is REMOTE_ADDR: X-Forwarded-For is written
by the client and believed only from a proxy we run. Behind trusted proxies, X-Forwarded-For is
read from the right (each proxy appends the address it was called from), skipping the trusted
ones: the first address that is not one of ours is the client. An IPv6 client is counted by its
/64, the block one host is usually given, so it cannot take a fresh address per request.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from django.conf import settings

IPV6_BUCKET_PREFIX = 64
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _parsed(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip().removeprefix("[").split("]")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _bucket(address: Address) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_BUCKET_PREFIX), strict=False))
    return str(address)


def client_address(request: Any) -> str:
    """The client's address (an IPv6 client's /64) as text; "unknown" when there is none."""
    meta = request.META
    remote = _parsed(meta.get("REMOTE_ADDR", ""))
    if remote is None:
        return "unknown"
    trusted = _networks(tuple(settings.DPM_TRUSTED_PROXIES))
    if not trusted:
        return _bucket(remote)
    client = remote
    hops = [hop for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    while any(client in network for network in trusted) and hops:
        hop = _parsed(hops.pop())
        if hop is None:
            break  # a malformed entry: the last address a trusted proxy vouched for is as far as we go
        client = hop
    return _bucket(client)
