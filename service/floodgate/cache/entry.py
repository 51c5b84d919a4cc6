"""What the tiers store: sealed blobs (expiry + payload), value codecs, and cached HTTP responses.

L2 blob layout: `0x01 | expires_at (u64 ms since the epoch, big-endian) | payload`. A response
payload is `etag_len u8 | etag | n_headers u8 | n * (name_len u8 | name | value_len u16 | value) |
body`: one HGET returns everything a hit needs, with no JSON, no model and no re-serialisation.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Final, Protocol, TypeVar

import orjson

from floodgate.cache.etag import make_etag

T = TypeVar("T")
_VERSION: Final = 1
_ENVELOPE: Final = struct.Struct(">BQ")
_U8: Final = struct.Struct(">B")
_U16: Final = struct.Struct(">H")

Headers = tuple[tuple[bytes, bytes], ...]


class Codec(Protocol[T]):
    """Turns a value into the bytes L2 keeps, and back."""

    def encode(self, value: T) -> bytes: ...

    def decode(self, data: bytes) -> T: ...


class JsonCodec:
    """JSON-able values (numbers, strings, lists, dicts) through orjson."""

    def encode(self, value: Any) -> bytes:
        return orjson.dumps(value)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class BytesCodec:
    """Raw bytes, unchanged."""

    def encode(self, value: bytes) -> bytes:
        return value

    def decode(self, data: bytes) -> bytes:
        return data


JSON: Final = JsonCodec()
BYTES: Final = BytesCodec()


def seal(payload: bytes, expires_at: float) -> bytes:
    return _ENVELOPE.pack(_VERSION, int(expires_at * 1000)) + payload


def unseal(blob: bytes, now: float | None = None) -> tuple[bytes, float] | None:
    """(payload, expires_at) of a live blob; None when expired, truncated or of another version."""
    if len(blob) < _ENVELOPE.size:
        return None
    version, expires_ms = _ENVELOPE.unpack_from(blob)
    expires_at = expires_ms / 1000
    if version != _VERSION or expires_at <= (time.time() if now is None else now):
        return None
    return blob[_ENVELOPE.size :], expires_at


class ResponseEntry:
    """A cached 200: body, strong ETag, the app's own headers, the ASGI header lists to replay."""

    __slots__ = ("body", "etag", "headers", "headers_200", "headers_304")

    def __init__(
        self, body: bytes, etag: str, headers: Headers, *, cache_control: str, vary: str
    ) -> None:
        self.body = body
        self.etag = etag
        self.headers = headers
        validators: list[tuple[bytes, bytes]] = [(b"etag", etag.encode("latin-1"))]
        if cache_control:
            validators.append((b"cache-control", cache_control.encode("latin-1")))
        if vary:
            validators.append((b"vary", vary.encode("latin-1")))
        # RFC 9110 §15.4.5: a 304 carries the validators and cache headers a 200 would have.
        self.headers_304: Headers = tuple(validators)
        self.headers_200: Headers = (
            *headers,
            (b"content-length", str(len(body)).encode("ascii")),
            *validators,
        )


class ResponseCodec:
    """Encodes ResponseEntry for L2 and rebuilds it with the route's Cache-Control and Vary."""

    __slots__ = ("cache_control", "vary")

    def __init__(self, *, cache_control: str, vary: str) -> None:
        self.cache_control = cache_control
        self.vary = vary

    def entry(self, body: bytes, headers: Headers) -> ResponseEntry | None:
        """A new entry for a fresh 200, or None when its headers do not fit the compact encoding."""
        if len(headers) > 255 or any(len(n) > 255 or len(v) > 65535 for n, v in headers):
            return None
        return ResponseEntry(
            body, make_etag(body), headers, cache_control=self.cache_control, vary=self.vary
        )

    def encode(self, value: ResponseEntry) -> bytes:
        etag = value.etag.encode("ascii")
        parts = [_U8.pack(len(etag)), etag, _U8.pack(len(value.headers))]
        for name, val in value.headers:
            parts += (_U8.pack(len(name)), name, _U16.pack(len(val)), val)
        parts.append(value.body)
        return b"".join(parts)

    def decode(self, data: bytes) -> ResponseEntry:
        view = memoryview(data)
        size = view[0]
        etag = bytes(view[1 : 1 + size]).decode("ascii")
        pos = 1 + size
        count = view[pos]
        pos += 1
        headers = []
        for _ in range(count):
            size = view[pos]
            name = bytes(view[pos + 1 : pos + 1 + size])
            pos += 1 + size
            (size,) = _U16.unpack_from(view, pos)
            headers.append((name, bytes(view[pos + 2 : pos + 2 + size])))
            pos += 2 + size
        return ResponseEntry(
            bytes(view[pos:]),
            etag,
            tuple(headers),
            cache_control=self.cache_control,
            vary=self.vary,
        )
