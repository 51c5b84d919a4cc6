"""RFC 9457 problem documents as bytes: the one writer for FastAPI handlers and pure-ASGI layers."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://floodgate.dev/problems/"


def problem_body(
    status: int,
    detail: str,
    *,
    type_slug: str | None = None,
    title: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """The document: `type` is PROBLEM_BASE + `type_slug` (default: the status phrase, slugged)."""
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    doc: dict[str, Any] = {
        "type": PROBLEM_BASE + (type_slug or phrase.lower().replace(" ", "-").replace("'", "")),
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if extra:
        doc.update(extra)
    return orjson.dumps(doc)


def problem_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    """The raw ASGI header pairs that describe `body`: content-type, then content-length."""
    return [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
