"""The stored forms: sealed blobs with expiry, the compact response encoding, the value codecs."""

from __future__ import annotations

import time

from floodgate.cache.entry import BYTES, JSON, ResponseCodec, seal, unseal
from floodgate.cache.etag import make_etag


def test_seal_and_unseal_round_trip_until_expiry() -> None:
    now = time.time()
    blob = seal(b"payload", now + 10)
    opened = unseal(blob, now)
    assert opened is not None
    assert opened[0] == b"payload"
    assert abs(opened[1] - (now + 10)) < 0.002
    assert unseal(blob, now + 10.01) is None
    assert unseal(b"\x01abc") is None  # truncated
    assert unseal(b"\x02" + blob[1:], now) is None  # another format version


def test_response_entry_round_trip_keeps_bytes_headers_and_etag() -> None:
    codec = ResponseCodec(cache_control="no-cache", vary="accept-language")
    body = b'{"id":7,"text":"h\xc3\xa9"}'
    headers = ((b"content-type", b"application/json"), (b"link", b'<https://x>; rel="next"'))
    entry = codec.entry(body, headers)
    assert entry is not None
    assert entry.etag == make_etag(body)
    again = codec.decode(codec.encode(entry))
    assert again.body == body
    assert again.etag == entry.etag
    assert again.headers == headers
    assert again.headers_200 == entry.headers_200
    assert dict(entry.headers_200) == {
        b"content-type": b"application/json",
        b"link": b'<https://x>; rel="next"',
        b"content-length": str(len(body)).encode(),
        b"etag": entry.etag.encode(),
        b"cache-control": b"no-cache",
        b"vary": b"accept-language",
    }
    assert dict(entry.headers_304) == {
        b"etag": entry.etag.encode(),
        b"cache-control": b"no-cache",
        b"vary": b"accept-language",
    }


def test_headers_that_do_not_fit_the_encoding_are_not_stored() -> None:
    codec = ResponseCodec(cache_control="", vary="")
    assert codec.entry(b"x", ((b"x-big", b"v" * 70_000),)) is None
    entry = codec.entry(b"", ())
    assert entry is not None
    assert b"cache-control" not in dict(entry.headers_200)
    assert b"vary" not in dict(entry.headers_304)


def test_value_codecs() -> None:
    value = {"total": 3, "items": [1, "a", None]}
    assert JSON.decode(JSON.encode(value)) == value
    assert BYTES.decode(BYTES.encode(b"\x00\xff")) == b"\x00\xff"
