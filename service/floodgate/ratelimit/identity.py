"""Client identity for rate-limit keys: the peer, or the forwarded client from trusted proxies.

Only FLOODGATE_TRUSTED_PROXIES decides whose forwarded headers are believed (the servers' own
proxy-header handling is off, see floodgate.process.worker). Both X-Forwarded-For and RFC 7239
`Forwarded` (its `for=` parameters) are read right to left, because each proxy appends the address
it received the request from: the hops to the right are written by our own proxies, everything to
the left of the first untrusted hop was written by the client and can be anything. So the client is
the right-most hop that is not a trusted proxy. A hop that is not an address (`for=unknown`, an
obfuscated `_id`, garbage) ends the walk at the last trusted hop. Headers from a peer that is not a
trusted proxy are ignored entirely. When a request carries both headers and they name different
clients, one of them was written by the client, and we cannot know which: the request is keyed on
its peer, the trusted proxy (a client cannot dodge limits by choosing a header to forge).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """`['10.0.0.0/8', '::1']` (or network objects) → networks; ValueError names a bad entry."""
    networks: list[IPNetwork] = []
    for raw in cidrs:
        if not isinstance(raw, str):
            networks.append(raw)
            continue
        text = raw.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted proxy {text!r} is not an address or CIDR: {exc}") from None
    return tuple(networks)


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:8080"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_elements(line: str) -> Iterator[str | None]:
    """The `for=` value of each element of one `Forwarded` line; None where there is none.

    RFC 7239: elements are separated by commas, pairs by semicolons, a value is a token or a
    quoted-string (which may hold either separator, and backslash escapes). Empty elements are
    skipped, as the list syntax allows; an element with no `for=`, or with two, has no value.
    """
    length = len(line)
    i = 0
    seen = False  # the element so far has a pair
    value: str | None = None
    fors = 0  # `for=` pairs in the element (more than one, or a broken one: no value)
    while True:
        if i >= length or line[i] == ",":
            if seen:
                yield value if fors == 1 else None
            if i >= length:
                return
            seen, value, fors = False, None, 0
            i += 1
            continue
        if line[i] in "; \t":
            i += 1
            continue
        # One pair: a name up to "=" (or a separator), then a token or a quoted-string.
        start = i
        while i < length and line[i] not in "=;,":
            i += 1
        name = line[start:i].strip().lower()
        text = ""
        if i < length and line[i] == "=":
            i += 1
            if i < length and line[i] == '"':
                i += 1
                chars: list[str] = []
                while i < length and line[i] != '"':
                    if line[i] == "\\" and i + 1 < length:
                        i += 1
                    chars.append(line[i])
                    i += 1
                text = "".join(chars)
                if i >= length:  # unterminated: nothing in this element can be trusted
                    fors += 2
                i += 1  # the closing quote
                while i < length and line[i] not in ";,":
                    i += 1  # junk after a quoted-string, up to the next separator
            else:
                start = i
                while i < length and line[i] not in ";,":
                    i += 1
                text = line[start:i].strip()
        seen = True
        if name == "for":
            fors += 1
            value = text


def forwarded_hops(lines: Sequence[bytes]) -> list[str | None]:
    """The `for=` hops of `Forwarded` header lines, left to right (None: an element without one)."""
    return [hop for line in lines for hop in _forwarded_elements(line.decode("latin-1"))]


def _xff_hops(lines: Sequence[bytes]) -> list[str | None]:
    return [h for line in lines for h in line.decode("latin-1").split(",") if h.strip()]


def hash_value(value: bytes) -> str:
    """Header-derived keys are hashed so clients cannot write arbitrary text into Redis keys."""
    return hashlib.blake2b(value, digest_size=16, person=b"floodgate-rl").hexdigest()


class ClientIdentity:
    """Resolves the client address of an ASGI request and turns it into a key component."""

    def __init__(
        self, trusted_proxies: Sequence[str | IPNetwork] = (), *, ipv6_prefix: int = 64
    ) -> None:
        self.trusted = parse_networks(trusted_proxies)
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError("ipv6_prefix must be between 1 and 128")
        self.ipv6_prefix = ipv6_prefix
        self._cache: dict[str, bool] = {}
        self._peer_keys: dict[str, str] = {}

    def is_trusted(self, address: IPAddress) -> bool:
        text = str(address)
        known = self._cache.get(text)
        if known is None:
            known = any(address in net for net in self.trusted)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[text] = known
        return known

    def client_address(
        self, peer: str | None, forwarded_for: Sequence[bytes], forwarded: Sequence[bytes] = ()
    ) -> IPAddress | None:
        """The peer, or the right-most untrusted forwarded hop when the peer is a trusted proxy.

        `forwarded_for` are the X-Forwarded-For lines, `forwarded` the RFC 7239 `Forwarded` lines.
        """
        address = _parse_ip(peer) if peer else None
        if address is None or not self.trusted or not (forwarded_for or forwarded):
            return address
        if not self.is_trusted(address):
            return address
        if not forwarded:
            return self._walk(address, _xff_hops(forwarded_for))
        from_forwarded = self._walk(address, forwarded_hops(forwarded))
        if not forwarded_for:
            return from_forwarded
        from_xff = self._walk(address, _xff_hops(forwarded_for))
        return from_forwarded if from_forwarded == from_xff else address

    def _walk(self, address: IPAddress, hops: Sequence[str | None]) -> IPAddress:
        """Right to left from the trusted peer `address`: the first hop that is not trusted."""
        for hop in reversed(hops):
            parsed = _parse_ip(hop) if hop else None
            if parsed is None:
                # Not an address (garbage, `unknown`, obfuscated): stop at the last hop we could
                # read (a trusted one).
                return address
            address = parsed
            if not self.is_trusted(parsed):
                return parsed
        return address  # every hop trusted: the left-most is the origin

    def key_part(self, address: IPAddress | None) -> str:
        """`ip:192.0.2.1`, `ip:2001:db8::/64` (IPv6 clients grouped by prefix), `ip:unknown`."""
        if address is None:
            return "ip:unknown"
        if isinstance(address, ipaddress.IPv6Address) and self.ipv6_prefix < 128:
            network = ipaddress.IPv6Network((address, self.ipv6_prefix), strict=False)
            return f"ip:{network}"
        return f"ip:{address}"

    def client_key(
        self, peer: str | None, forwarded_for: Sequence[bytes], forwarded: Sequence[bytes] = ()
    ) -> str:
        """The key component of a request's client, from the ASGI peer host and its XFF and
        `Forwarded` lines."""
        if peer is not None and (not self.trusted or not (forwarded_for or forwarded)):
            # The common case (no proxy in play) is a dict hit: parsing addresses costs
            # microseconds.
            key = self._peer_keys.get(peer)
            if key is None:
                key = self.key_part(self.client_address(peer, ()))
                if len(self._peer_keys) > 10_000:
                    self._peer_keys.clear()
                self._peer_keys[peer] = key
            return key
        return self.key_part(self.client_address(peer, forwarded_for, forwarded))

    def scope_key(self, scope: Mapping[str, Any]) -> str:
        """`client_key` of an ASGI HTTP scope; its headers are only scanned with trusted proxies."""
        client = scope.get("client")
        peer = client[0] if client else None
        if not self.trusted:
            return self.client_key(peer, ())
        xff: list[bytes] = []
        forwarded: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                xff.append(value)
            elif name == b"forwarded":
                forwarded.append(value)
        return self.client_key(peer, xff, forwarded)
