"""Response bodies serialised once, exactly as FastAPI's `response_model` would produce them.

FastAPI validates what an endpoint returns against its `response_model` before serialising it: for
a page of items that is every item again, and for a Union of page types (offset or keyset) every
item once per member tried. Our endpoints build their models from validated rows already, so
list endpoints return `json_response(page)`; `response_model` still documents the shape in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel
from starlette.responses import Response


def json_bytes(model: BaseModel) -> bytes:
    """The JSON FastAPI sends for `model` (by alias, nothing excluded)."""
    return model.__pydantic_serializer__.to_json(model, by_alias=True)


def json_response(model: BaseModel, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json_bytes(model), media_type="application/json", headers=headers)
