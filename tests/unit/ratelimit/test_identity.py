"""Client identity: peer address, X-Forwarded-For only through trusted proxies, key formatting."""

from __future__ import annotations

import ipaddress

import pytest

from floodgate.ratelimit import ClientIdentity
from floodgate.ratelimit.identity import hash_value

PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]


def key(identity: ClientIdentity, peer: str | None, *xff: str) -> str:
    return identity.client_key(peer, [line.encode() for line in xff])


def test_peer_address_without_proxies() -> None:
    identity = ClientIdentity()
    assert key(identity, "192.0.2.1") == "ip:192.0.2.1"
    assert key(identity, "192.0.2.1", "203.0.113.9") == "ip:192.0.2.1"  # nobody trusted


def test_xff_from_an_untrusted_peer_is_ignored() -> None:
    identity = ClientIdentity(PROXIES)
    assert key(identity, "192.0.2.1", "203.0.113.9") == "ip:192.0.2.1"


def test_xff_from_a_trusted_proxy_is_used() -> None:
    identity = ClientIdentity(PROXIES)
    assert key(identity, "10.1.2.3", "203.0.113.9") == "ip:203.0.113.9"


def test_spoofed_left_hops_are_skipped_right_to_left() -> None:
    # The client wrote "6.6.6.6"; our proxies appended the real client and then themselves.
    identity = ClientIdentity(PROXIES)
    assert key(identity, "10.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.7") == "ip:203.0.113.9"
    assert key(identity, "10.0.0.1", "6.6.6.6", "203.0.113.9, 10.0.0.7") == "ip:203.0.113.9"


def test_all_hops_trusted_gives_the_left_most() -> None:
    identity = ClientIdentity(PROXIES)
    assert key(identity, "10.0.0.1", "10.9.9.9, 10.0.0.7") == "ip:10.9.9.9"


def test_garbage_hop_stops_at_the_last_trusted_one() -> None:
    identity = ClientIdentity(PROXIES)
    assert key(identity, "10.0.0.1", "203.0.113.9, not-an-ip, 10.0.0.7") == "ip:10.0.0.7"


def test_ports_brackets_and_mapped_addresses() -> None:
    identity = ClientIdentity(PROXIES)
    assert key(identity, "10.0.0.1", "203.0.113.9:4711") == "ip:203.0.113.9"
    assert key(identity, "10.0.0.1", "[2001:db8:1::5]:443") == "ip:2001:db8:1::/64"
    assert key(identity, "::ffff:192.0.2.7") == "ip:192.0.2.7"


def test_ipv6_clients_are_grouped_by_prefix() -> None:
    assert key(ClientIdentity(), "2001:db8:1:2:aaaa::1") == "ip:2001:db8:1:2::/64"
    assert key(ClientIdentity(ipv6_prefix=128), "2001:db8::1") == "ip:2001:db8::1"


def test_unknown_peer() -> None:
    assert key(ClientIdentity(), None) == "ip:unknown"


def test_network_objects_are_accepted() -> None:
    identity = ClientIdentity([ipaddress.ip_network("10.0.0.0/8"), "192.168.0.0/16"])
    assert key(identity, "192.168.1.1", "203.0.113.9") == "ip:203.0.113.9"


def test_bad_cidr_names_the_entry() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        ClientIdentity(["10.0.0.0/33"])


def test_header_values_are_hashed() -> None:
    digest = hash_value(b"secret-api-key")
    assert len(digest) == 32
    assert "secret" not in digest
    assert digest == hash_value(b"secret-api-key") != hash_value(b"other")
