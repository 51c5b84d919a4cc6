"""ETags are a pure function of the bytes; If-None-Match follows RFC 9110 (weak compare, *)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from floodgate.cache.etag import if_none_match_hits, make_etag, parse_if_none_match


def test_etag_is_strong_quoted_and_depends_only_on_the_bytes() -> None:
    etag = make_etag(b'{"id":7}')
    assert etag.startswith('"')
    assert etag.endswith('"')
    assert not etag.startswith("W/")
    assert etag == make_etag(b'{"id":7}')
    assert etag != make_etag(b'{"id":8}')
    assert len(etag) == 24


def test_etag_is_the_same_in_another_process_with_another_hash_seed() -> None:
    code = "from floodgate.cache.etag import make_etag; print(make_etag(b'hello'))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == make_etag(b"hello")
    # Fixed: changing the algorithm must be deliberate (it invalidates every client's copy).
    assert make_etag(b"hello") == '"Rvt0CNTyhSKPSvUW6iWFGw"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('"a"', ['"a"']),
        ('"a", "b"', ['"a"', '"b"']),
        ('W/"a",W/"b" , "c"', ['"a"', '"b"', '"c"']),
        ('"a,b", "c"', ['"a,b"', '"c"']),  # a comma inside a quoted tag is part of it
        ("*", None),
        ("  *  ", None),
        ("", []),
        ('"a", W/b, "c"', ['"a"']),  # W/ must be followed by a quoted tag: stop there
        ('"a", "unterminated', ['"a"']),
        ("bare", ['"bare"']),  # unquoted tags from sloppy clients are taken as they are
    ],
)
def test_parse_if_none_match(header: str, expected: list[str] | None) -> None:
    assert parse_if_none_match(header) == expected


def test_if_none_match_uses_weak_comparison() -> None:
    etag = make_etag(b"body")
    assert if_none_match_hits(etag, etag)
    assert if_none_match_hits(f"W/{etag}", etag)
    assert if_none_match_hits(f'"other", {etag}', etag)
    assert if_none_match_hits("*", etag)
    assert not if_none_match_hits('"other"', etag)
    assert not if_none_match_hits("", etag)
