"""Strong ETags computed from response bytes, and `If-None-Match` evaluation (RFC 9110 §13.1.2)."""

from __future__ import annotations

import base64
import hashlib


def make_etag(body: bytes) -> str:
    """A strong validator: 128 bits of BLAKE2b over the body; every process and pod agrees on it."""
    digest = hashlib.blake2b(body, digest_size=16).digest()
    return '"' + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") + '"'


def parse_if_none_match(value: str) -> list[str] | None:
    """The opaque tags listed (quotes kept, `W/` dropped); None means `*` (any representation).

    Lenient where it is harmless: a bare token without quotes is taken as that tag; parsing stops at
    the first malformed element and keeps what came before it.
    """
    if value.strip() == "*":
        return None
    tags: list[str] = []
    pos, end = 0, len(value)
    while pos < end:
        char = value[pos]
        if char in " \t,":
            pos += 1
            continue
        if value.startswith("W/", pos):
            pos += 2
            if pos >= end or value[pos] != '"':
                break
        if value[pos] == '"':
            close = value.find('"', pos + 1)
            if close < 0:
                break
            tags.append(value[pos : close + 1])
            pos = close + 1
        else:
            comma = value.find(",", pos)
            token = value[pos:] if comma < 0 else value[pos:comma]
            token = token.strip()
            if not token or '"' in token:
                break
            tags.append(f'"{token}"')
            pos = end if comma < 0 else comma
    return tags


def if_none_match_hits(header: str, etag: str) -> bool:
    """True when the client's copy is current, i.e. the answer is 304 (weak comparison, per RFC)."""
    if header == etag:
        return True
    tags = parse_if_none_match(header)
    return tags is None or etag in tags
