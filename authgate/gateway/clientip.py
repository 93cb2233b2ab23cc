"""The client's address, as far as it can be believed.

``X-Forwarded-For`` is written by whoever sent the request, so it is read only when the
direct peer is a configured trusted proxy (``AUTHGATE_TRUSTED_PROXIES``), and then from
the right: each trusted hop is skipped, and the first address a trusted proxy did not
add itself is the client. Anything to its left could have been made up by the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from authgate.gateway import appkeys

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
CLIENT_IP = web.RequestKey("client_ip", str)


def _parse(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, nets: Sequence[Network]
) -> bool:
    return any(address in net for net in nets if address.version == net.version)


def resolve(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    peer_address = _parse(peer or "")
    if peer_address is None:
        return peer or ""
    if not trusted or not _trusted(peer_address, trusted):
        return str(peer_address)
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    client = peer_address
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break  # garbage: stop at the last address we could believe
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)


def client_ip(request: web.Request) -> str:
    cached = request.get(CLIENT_IP)
    if cached is None:
        trusted = request.app[appkeys.SETTINGS].trusted_proxies
        cached = resolve(request.remote, request.headers.getall("X-Forwarded-For", []), trusted)
        request[CLIENT_IP] = cached
    return cached
