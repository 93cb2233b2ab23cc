"""Which address is the client: X-Forwarded-For only through trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from authgate.gateway.clientip import resolve

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),  # untrusted peer: header ignored
        ("10.1.1.1", ["198.51.100.1"], "198.51.100.1"),
        ("10.1.1.1", ["6.6.6.6, 198.51.100.1"], "198.51.100.1"),  # spoofed left entry
        ("10.1.1.1", ["198.51.100.1, 10.2.2.2"], "198.51.100.1"),  # two trusted hops
        ("10.1.1.1", ["198.51.100.1", "10.2.2.2"], "198.51.100.1"),  # two headers
        ("10.1.1.1", [], "10.1.1.1"),
        ("10.1.1.1", ["garbage, 198.51.100.1"], "198.51.100.1"),
        ("10.1.1.1", ["198.51.100.1, garbage"], "10.1.1.1"),
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("10.1.1.1", ["10.3.3.3"], "10.3.3.3"),  # all trusted: the leftmost we reached
    ],
)
def test_forwarded_for_is_read_from_the_right_through_trusted_hops(
    peer: str, forwarded: list[str], expected: str
) -> None:
    assert resolve(peer, forwarded, PROXIES) == expected


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert resolve("10.1.1.1", ["198.51.100.1"], ()) == "10.1.1.1"
