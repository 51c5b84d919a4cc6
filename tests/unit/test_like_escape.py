"""LIKE escaping: user input never acts as a wildcard (checked against SQLite's own LIKE)."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from floodgate.db.columns import escape_like


@pytest.mark.parametrize(
    ("term", "escaped"),
    [("50%", "50\\%"), ("a_b", "a\\_b"), ("back\\slash", "back\\\\slash"), ("plain", "plain")],
)
def test_escapes(term: str, escaped: str) -> None:
    assert escape_like(term) == escaped


@given(
    haystack=st.text(alphabet="ab%_\\", max_size=8), needle=st.text(alphabet="ab%_\\", max_size=4)
)
def test_escaped_like_equals_substring_test(haystack: str, needle: str) -> None:
    db = sqlite3.connect(":memory:")
    pattern = f"%{escape_like(needle)}%"
    (matched,) = db.execute("SELECT ? LIKE ? ESCAPE '\\'", (haystack, pattern)).fetchone()
    assert bool(matched) == (needle.lower() in haystack.lower())
