"""Whom the server takes a request to come from (HYGIEIA_TRUSTED_PROXIES, api.deps).

The answer keys every throttle: a client that can choose it escapes its limits, and a
proxy's own address standing in for its clients puts all of them in one bucket.
"""

from __future__ import annotations

import ipaddress

import pytest

from hygieia.api.deps import resolve_client_address

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("203.0.113.9", ["198.51.100.7"], "203.0.113.9"),
        # Through one proxy: the address it appended.
        ("10.0.0.2", ["198.51.100.7"], "198.51.100.7"),
        # Whatever the client wrote left of that proves nothing, trusted-looking or not.
        ("10.0.0.2", ["1.2.3.4, 10.9.9.9, 198.51.100.7"], "198.51.100.7"),
        # Through two proxies, and over several header lines.
        ("10.0.0.2", ["198.51.100.7, 10.0.0.3"], "198.51.100.7"),
        ("10.0.0.2", ["6.6.6.6", "198.51.100.7", "10.0.0.3"], "198.51.100.7"),
        # Every hop trusted: the left-most.
        ("10.0.0.2", ["10.0.0.5, 10.0.0.3"], "10.0.0.5"),
        # Garbage ends the walk at the last hop known to be honest.
        ("10.0.0.2", ["198.51.100.7, unknown"], "10.0.0.2"),
        # IPv6 and IPv4-mapped peers.
        ("fd00::2", ["2001:db8::7"], "2001:db8::7"),
        ("::ffff:10.0.0.2", ["198.51.100.7"], "198.51.100.7"),
    ],
)
def test_right_most_untrusted_hop_is_the_client(peer: str, headers: list[str], client: str) -> None:
    assert resolve_client_address(peer, headers, PROXIES) == client


@pytest.mark.parametrize(
    ("hop", "client"),
    [
        ("198.51.100.7:5678", "198.51.100.7"),
        ("[2001:db8::7]:5678", "2001:db8::7"),
        ("[2001:db8::7]", "2001:db8::7"),
        ("10.0.0.3:443, 198.51.100.7:5678", "198.51.100.7"),
    ],
)
def test_hops_with_ports_are_read(hop: str, client: str) -> None:
    """Failed before: an "address:port" entry (as Azure Application Gateway and IIS ARR
    write them) ended the walk at the proxy, so every client had the proxy's address
    and shared its throttles: 100 failed logins by anyone held up everyone."""
    assert resolve_client_address("10.0.0.2", [hop], PROXIES) == client
