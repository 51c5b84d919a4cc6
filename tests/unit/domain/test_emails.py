"""The email identity rule: which spellings are one address, which are refused, and its laws."""

from __future__ import annotations

import unicodedata

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from floodgate.domain.users.emails import normalise_email

SAME = [
    ("case", "Ada.Lovelace@Example.COM", "ada.lovelace@example.com"),
    ("unicode-case", "ÉLODIE@exemple.fr", "élodie@exemple.fr"),
    ("greek-final-sigma", "ΟΔΟΣ@example.gr", "οδος@example.gr"),
    ("nfd-local", unicodedata.normalize("NFD", "josé@example.com"), "josé@example.com"),
    ("nfd-domain", unicodedata.normalize("NFD", "x@café.example"), "x@café.example"),
    ("a-label", "x@xn--r8jz45g.jp", "x@例え.jp"),
    ("a-label-upper", "x@XN--R8JZ45G.JP", "x@例え.jp"),
    ("ideographic-full-stop", "x@例え。jp", "x@例え.jp"),
    ("surrounding-space", "  ada@example.com\t", "ada@example.com"),
    ("kelvin-sign-is-canonical", "\u212a@example.com", "k@example.com"),
]

# Distinct mailboxes that a more aggressive rule would merge.
DISTINCT = [
    ("plus-tag", "ada+news@example.com", "ada@example.com"),
    ("dots", "a.da@gmail.com", "ada@gmail.com"),
    ("sharp-s-is-not-ss", "straße@example.de", "strasse@example.de"),
    ("a-label-vs-ascii", "x@xn--r8jz45g.jp", "x@r8jz45g.jp"),
]

REFUSED = [
    ("fullwidth-local", "\uff41\uff44\uff41@example.com"),
    ("fullwidth-domain", "ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"),
    ("ligature", "ﬁnance@example.com"),
    ("superscript", "user²@example.com"),
    ("fullwidth-at-free", "ada\uff20example.com"),
    ("local-65-octets", "a" * 65 + "@example.com"),
    ("local-66-octets-in-33-chars", "é" * 33 + "@example.com"),
    ("total-255-octets", "a" * 64 + "@" + ".".join(["b" * 62, "b" * 62, "b" * 61]) + ".cc"),
    ("quoted-local", '"ada lovelace"@example.com'),
    ("ip-literal", "ada@[127.0.0.1]"),
    ("ipv6-literal", "ada@[IPv6:::1]"),
    ("display-name", "Ada <ada@example.com>"),
    ("inner-space", "ada lovelace@example.com"),
    ("trailing-newline", "ada@example.com\n"),
    ("carriage-return", "ada@example.com\r"),
    ("nul", "ada\x00@example.com"),
    ("zero-width-space", "a\u200bda@example.com"),
    ("no-domain", "ada@"),
    ("no-at", "ada.example.com"),
    ("trailing-dot", "ada@example.com."),
    ("empty", ""),
]


@pytest.mark.parametrize(("spelling", "stored"), [c[1:] for c in SAME], ids=[c[0] for c in SAME])
def test_spellings_of_one_address_normalise_alike(spelling: str, stored: str) -> None:
    assert normalise_email(spelling) == stored
    assert normalise_email(stored) == stored


@pytest.mark.parametrize(("a", "b"), [c[1:] for c in DISTINCT], ids=[c[0] for c in DISTINCT])
def test_distinct_mailboxes_stay_distinct(a: str, b: str) -> None:
    assert normalise_email(a) != normalise_email(b)


@pytest.mark.parametrize("address", [c[1] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused(address: str) -> None:
    with pytest.raises(ValueError, match=r"^value is not a valid email address: "):
        normalise_email(address)


def test_limits_are_inclusive() -> None:
    assert normalise_email("a" * 64 + "@example.com")
    assert normalise_email("é" * 32 + "@example.com")  # 64 octets
    longest = "a" * 64 + "@" + ".".join(["b" * 62, "b" * 62, "b" * 61]) + ".c"
    assert len(longest.encode()) == 254
    assert normalise_email(longest) == longest


# Characters from every corner of Unicode, biased towards the ones that make identity hard.
_TRICKY = st.sampled_from(
    list("AaÉé\u0301\u0327Σ\u03c3ςßẞİ\u0131K\u212aﬁ²")
    + list("\uff41\uff21\uff0e。\uff20.@+-_ \t\u00a0\u200b例え")
)
_CHARS = st.one_of(_TRICKY, st.characters(codec="utf-8"))
_LOCAL = st.text(_CHARS, min_size=1, max_size=20)
_DOMAIN = st.one_of(
    st.sampled_from(["example.com", "EXAMPLE.com", "例え.jp", "xn--r8jz45g.jp", "café.fr"]),
    st.lists(st.text(_CHARS, min_size=1, max_size=10), min_size=1, max_size=3).map(".".join),
)
ADDRESSES = st.one_of(st.builds("{}@{}".format, _LOCAL, _DOMAIN), st.text(_CHARS, max_size=40))


def _attempt(value: str) -> str | None:
    try:
        return normalise_email(value)
    except ValueError:
        return None


@settings(max_examples=1500, deadline=None)
@given(ADDRESSES)
@example("ΟΔΟΣ@example.gr")
@example("\u0130@example.com")
def test_normalising_twice_is_normalising_once(value: str) -> None:
    once = _attempt(value)
    if once is not None:
        assert normalise_email(once) == once
        assert once == unicodedata.normalize("NFC", once)
        assert once == unicodedata.normalize("NFKC", once)
        assert len(once.split("@")[0].encode()) <= 64
        assert len(once.encode()) <= 254


@settings(max_examples=500, deadline=None)
@given(ADDRESSES, st.sampled_from(["NFC", "NFD"]), st.sampled_from([str.upper, str.lower]))
def test_canonically_equivalent_or_recased_spellings_are_one_address(
    value: str, form: str, recase: object
) -> None:
    # Two spellings are one address iff they normalise alike: re-spell an accepted address in
    # another normalisation form, or another ASCII case, and it must land on the same row.
    once = _attempt(value)
    if once is None:
        return
    local, _, domain = once.rpartition("@")
    assert callable(recase)
    ascii_recased = "".join(recase(c) if c.isascii() else c for c in local)
    for spelling in (
        unicodedata.normalize(form, once),  # type: ignore[arg-type]
        f"{ascii_recased}@{domain.upper() if domain.isascii() else domain}",
    ):
        assert _attempt(spelling) == once


@settings(max_examples=500, deadline=None)
@given(ADDRESSES)
def test_accepted_addresses_are_accepted_by_email_validator(value: str) -> None:
    # The stored form is always a deliverable-looking address to the library mail code would use.
    once = _attempt(value)
    if once is not None:
        try:
            validate_email(once, check_deliverability=False)
        except EmailNotValidError as exc:  # pragma: no cover - the assertion is the message
            raise AssertionError(once) from exc


@settings(max_examples=500, deadline=None)
@given(ADDRESSES)
def test_stored_values_of_the_old_rule_are_unchanged(value: str) -> None:
    # The rule before issue 13 (EmailStr, then lower-case the whole string): every value it
    # stored that the new rule still accepts is already in the new stored form, so existing
    # rows need no data migration (see docs/email-identity.md).
    from pydantic import EmailStr, TypeAdapter, ValidationError

    try:
        old = TypeAdapter(EmailStr).validate_python(value).lower()
    except ValidationError:
        return
    new = _attempt(old)
    assert new is None or new == old
