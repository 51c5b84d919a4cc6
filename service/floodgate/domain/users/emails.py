"""The email identity rule: one function maps every spelling of an address to its stored form.

Two inputs are the same address exactly when `normalise_email` maps them to the same string; the
users table stores only that string, so its unique index decides duplicates for every spelling
(see docs/email-identity.md for the policy and the reasons behind each choice).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, WithJsonSchema

# RFC 5321 4.5.3.1: 64 octets before the @, 254 for the whole path without its angle brackets.
# email-validator checks the total in UTF-8 octets but the local part only in strict mode and in
# characters, so the local-part limit is enforced here, in octets.
MAX_LOCAL_OCTETS = 64
MAX_EMAIL_OCTETS = 254


def _invalid(reason: str) -> ValueError:
    return ValueError(f"value is not a valid email address: {reason}")


def normalise_email(value: str) -> str:
    """The stored form of an address, or `ValueError` with a client-readable reason.

    Idempotent: `normalise_email(normalise_email(x)) == normalise_email(x)`.
    """
    if "\r" in value or "\n" in value:
        # Never part of an address, and dangerous wherever the value later meets a mail header.
        raise _invalid("it must not contain line breaks")
    address = value.strip()
    nfc = unicodedata.normalize("NFC", address)
    if unicodedata.normalize("NFKC", nfc) != nfc:
        # Fullwidth letters, ligatures, superscripts...: refused rather than folded, because a
        # folded local part may not be the mailbox the user owns (no standard maps it).
        raise _invalid("compatibility characters (fullwidth letters, ligatures) are refused")
    try:
        # Quoted local parts, IP-literal domains and display names stay refused (the defaults).
        parsed = validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        raise _invalid(str(exc)) from exc
    # email-validator has NFC-normalised the local part and turned the domain (U- or A-labels,
    # any case) into lower-case U-labels by UTS #46; lower-casing the local part is the one
    # step beyond it (not RFC-sanctioned, but what every mailbox provider does in practice).
    local = parsed.local_part.lower()
    if len(local.encode()) > MAX_LOCAL_OCTETS:
        raise _invalid(f"the part before the @-sign is over {MAX_LOCAL_OCTETS} octets")
    normalised = f"{local}@{parsed.domain}"
    if len(normalised.encode()) > MAX_EMAIL_OCTETS:
        raise _invalid(f"it is over {MAX_EMAIL_OCTETS} octets")
    return normalised


# The API type: validated and normalised on the way in, documented as `idn-email` (internationalised
# domains are stored and returned as U-labels, which `format: email` would not allow).
Email = Annotated[
    str,
    Field(max_length=MAX_EMAIL_OCTETS),
    AfterValidator(normalise_email),
    WithJsonSchema({"type": "string", "format": "idn-email", "maxLength": MAX_EMAIL_OCTETS}),
]
