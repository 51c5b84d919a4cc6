"""Client identity for rate-limit keys: the peer address, or X-Forwarded-For from trusted proxies.

X-Forwarded-For is read right to left, because each proxy appends the address it received the
request from: the hops to the right are written by our own proxies, everything to the left of the
first untrusted hop was written by the client and can be anything. So the client is the right-most
hop that is not a trusted proxy. A header from a peer that is not a trusted proxy is ignored
entirely.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence

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

    def client_address(self, peer: str | None, forwarded_for: Sequence[bytes]) -> IPAddress | None:
        """The peer address, or XFF's right-most untrusted hop when the peer is a trusted proxy."""
        address = _parse_ip(peer) if peer else None
        if address is None or not self.trusted or not forwarded_for:
            return address
        if not self.is_trusted(address):
            return address
        hops = [h for line in forwarded_for for h in line.decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            parsed = _parse_ip(hop)
            if parsed is None:
                # Garbage in the chain: stop at the last hop we could read (a trusted one).
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

    def client_key(self, peer: str | None, forwarded_for: Sequence[bytes]) -> str:
        """The key component of a request's client, from the ASGI peer host and its XFF lines."""
        if peer is not None and (not forwarded_for or not self.trusted):
            # The common case (no proxy in play) is a dict hit: parsing addresses costs
            # microseconds.
            key = self._peer_keys.get(peer)
            if key is None:
                key = self.key_part(self.client_address(peer, ()))
                if len(self._peer_keys) > 10_000:
                    self._peer_keys.clear()
                self._peer_keys[peer] = key
            return key
        return self.key_part(self.client_address(peer, forwarded_for))
