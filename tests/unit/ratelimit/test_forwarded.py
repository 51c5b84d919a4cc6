"""RFC 7239 `Forwarded`: parsing its `for=` hops, and choosing the client like X-Forwarded-For."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floodgate.ratelimit import ClientIdentity
from floodgate.ratelimit.identity import forwarded_hops

PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]


@pytest.mark.parametrize(
    ("lines", "hops"),
    [
        ([b"for=192.0.2.43"], ["192.0.2.43"]),
        ([b"For=192.0.2.43, FOR=198.51.100.17"], ["192.0.2.43", "198.51.100.17"]),
        ([b'for="[2001:db8:cafe::17]:4711"'], ["[2001:db8:cafe::17]:4711"]),
        ([b'for="[2001:db8:cafe::17]"'], ["[2001:db8:cafe::17]"]),
        ([b'for="192.0.2.60:8080"'], ["192.0.2.60:8080"]),
        ([b"for=192.0.2.60;proto=http;by=203.0.113.43"], ["192.0.2.60"]),
        ([b"proto=https;for=192.0.2.60 ; host=example.com"], ["192.0.2.60"]),
        ([b"for=unknown, for=_hidden"], ["unknown", "_hidden"]),
        # Separators inside a quoted-string are text, and backslash escapes a character.
        ([b'for="a,b;c";by=x, for=192.0.2.1'], ["a,b;c", "192.0.2.1"]),
        ([b'for="\\"x"'], ['"x']),
        # Several lines are one list, in order; empty elements are skipped.
        ([b"for=192.0.2.1", b" , ,for=192.0.2.2,,"], ["192.0.2.1", "192.0.2.2"]),
        ([b""], []),
        # An element without for=, with two, or with a broken quoted-string has no hop.
        ([b"proto=https, for=192.0.2.2"], [None, "192.0.2.2"]),
        ([b"for=192.0.2.1;for=192.0.2.2"], [None]),
        ([b'for="192.0.2.1'], [None]),
        ([b'for=192.0.2.1;proto="x'], [None]),
    ],
)
def test_for_hops_are_parsed(lines: list[bytes], hops: list[str | None]) -> None:
    assert forwarded_hops(lines) == hops


@given(st.binary(max_size=200))
def test_any_bytes_parse_without_error(raw: bytes) -> None:
    for hop in forwarded_hops([raw]):
        assert hop is None or isinstance(hop, str)


def key(
    identity: ClientIdentity, peer: str, *, xff: str | None = None, fwd: str | None = None
) -> str:
    return identity.client_key(
        peer,
        [xff.encode()] if xff is not None else [],
        [fwd.encode()] if fwd is not None else [],
    )


def test_forwarded_from_an_untrusted_peer_is_ignored() -> None:
    identity = ClientIdentity(PROXIES)
    assert key(identity, "192.0.2.9", fwd="for=198.51.100.1") == "ip:192.0.2.9"
    assert key(ClientIdentity(), "127.0.0.1", fwd="for=198.51.100.1") == "ip:127.0.0.1"


def test_forwarded_from_a_trusted_proxy_is_read_right_to_left() -> None:
    identity = ClientIdentity(PROXIES)
    assert key(identity, "10.0.0.1", fwd="for=198.51.100.1") == "ip:198.51.100.1"
    spoofed = 'for=203.0.113.66, for="198.51.100.1:5555", for=10.1.1.1;proto=https'
    assert key(identity, "10.0.0.1", fwd=spoofed) == "ip:198.51.100.1"
    ipv6 = 'for="[2001:db8:cafe::17]:4711"'
    assert key(identity, "10.0.0.1", fwd=ipv6) == "ip:2001:db8:cafe::/64"
    assert key(identity, "10.0.0.1", fwd='for="[::ffff:192.0.2.7]"') == "ip:192.0.2.7"


def test_hops_that_are_not_addresses_stop_at_the_last_trusted_one() -> None:
    identity = ClientIdentity(PROXIES)
    for opaque in ("for=unknown", "for=_hidden", "proto=https", 'for="[nonsense]"'):
        assert key(identity, "10.0.0.1", fwd=f"for=203.0.113.9, {opaque}") == "ip:10.0.0.1"
    assert key(identity, "10.0.0.1", fwd="for=unknown, for=10.0.0.2") == "ip:10.0.0.2"


def test_both_headers_must_agree() -> None:
    identity = ClientIdentity(PROXIES)
    agree = key(identity, "10.0.0.1", xff="198.51.100.1", fwd="for=198.51.100.1")
    assert agree == "ip:198.51.100.1"
    # One of them was written by the client, and we cannot tell which: key on the proxy.
    assert key(identity, "10.0.0.1", xff="198.51.100.1", fwd="for=203.0.113.5") == "ip:10.0.0.1"
    assert key(identity, "10.0.0.1", xff="203.0.113.5", fwd="for=198.51.100.1") == "ip:10.0.0.1"


def test_scope_key_reads_both_headers_only_with_trusted_proxies() -> None:
    headers = [(b"forwarded", b"for=198.51.100.1"), (b"x-forwarded-for", b"198.51.100.1")]
    scope = {"client": ("10.0.0.1", 5000), "headers": headers}
    assert ClientIdentity(PROXIES).scope_key(scope) == "ip:198.51.100.1"
    assert ClientIdentity().scope_key(scope) == "ip:10.0.0.1"
    only_forwarded = {"client": ("10.0.0.1", 5000), "headers": headers[:1]}
    assert ClientIdentity(PROXIES).scope_key(only_forwarded) == "ip:198.51.100.1"
    assert ClientIdentity(PROXIES).scope_key({"client": None, "headers": []}) == "ip:unknown"
