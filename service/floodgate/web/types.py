"""Validated scalar types for the API: database-safe ids, text without NUL bytes."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

# Both backends store ids as signed 64-bit integers; larger values would fail inside the driver.
MAX_ID = 2**63 - 1


def _integral_number(value: object) -> object:
    # JSON has one number type: `7.0` is the integer 7 to JSON Schema (and to the document's
    # `type: integer`), so it is accepted; `7.5` still fails the strict check below.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Strict: JSON `true` is not the id 1, nor "1" an integer (pydantic's lax mode reads both).
RowId = Annotated[int, Field(ge=1, le=MAX_ID, strict=True), BeforeValidator(_integral_number)]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000; refuse it here rather than fail in the driver.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# The pattern states the same rule in the OpenAPI document (clients and fuzzers skip NUL).
CleanStr = Annotated[
    str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": "^[^\\u0000]*$"})
]
