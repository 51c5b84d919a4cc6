"""The served OpenAPI document: every status a client can get, as problem+json, from the settings.

FastAPI documents what the endpoints declare; the frame answers more than that (413/415 from the
request guard, 429 from the rate limiter, 503 when a dependency is down, 422 as problem+json), so
`install_openapi` post-processes the generated document once, for every operation of every domain:
a second domain gets the same error documentation, links and runtime maximums without declaring
them. Routers add only what their own code raises, with `problem_responses(409)`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from floodgate.settings import Settings
from floodgate.web.problem_body import PROBLEM_JSON

PROBLEM_REF = "#/components/schemas/Problem"

# The fields web/problem_body.py writes; `errors` is added for 422 (web/problems.py).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "422 only: one entry per invalid input.",
            "items": {
                "type": "object",
                "required": ["loc", "msg"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                },
            },
        },
    },
}

_INT_HEADER = {"schema": {"type": "integer", "minimum": 0}}
_RETRY_AFTER = {"description": "seconds to wait before retrying", **_INT_HEADER}
_HEADERS: dict[int, dict[str, Any]] = {
    429: {
        "Retry-After": _RETRY_AFTER,
        "RateLimit-Policy": {
            "description": 'the quota that denied the request, e.g. `"reads";q=100;w=60`',
            "schema": {"type": "string"},
        },
        "RateLimit": {
            "description": 'what is left of it, e.g. `"reads";r=0;t=5`',
            "schema": {"type": "string"},
        },
    },
    503: {"Retry-After": _RETRY_AFTER},
}
_DESCRIPTIONS: dict[int, str] = {
    400: "The request framing is unusable (e.g. a Content-Length that is not a number).",
    404: "No such resource.",
    409: "The request conflicts with the stored state (e.g. the email is taken).",
    413: "The request body exceeds the configured maximum (FLOODGATE_MAX_BODY_BYTES).",
    415: "The request body is not JSON (`application/json` or `application/*+json`).",
    422: "A parameter or the body failed validation; `errors[]` lists each input.",
    429: "A rate-limit policy denied the request; retry after `Retry-After` seconds.",
    503: "A dependency (the database, a fail-closed limiter) is unavailable; retry shortly.",
}

# Field-schema marker for a bound that is a runtime setting: `Query(json_schema_extra=...)`.
_SETTING_MAXIMUM = "x-floodgate-maximum-setting"
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
_BODY_METHODS = frozenset({"post", "put", "patch"})
_PATH_PARAM = re.compile(r"\{([^}/]+)\}$")


def problem_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of `status`, a problem document (with its headers)."""
    response: dict[str, Any] = {
        "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
    }
    if status in _HEADERS:
        response["headers"] = copy.deepcopy(_HEADERS[status])
    return response


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For a route's `responses=`: the statuses its own code raises beyond the frame's."""
    return {status: problem_response(status) for status in statuses}


def settings_maximum(setting: str) -> dict[str, Any]:
    """For `Query(json_schema_extra=...)`: the served document's `maximum` is this setting."""
    return {_SETTING_MAXIMUM: setting}


def non_nullable(schema: dict[str, Any]) -> None:
    """For `Field(json_schema_extra=...)` on optional fields that may be omitted but not null.

    `X | None = None` makes pydantic document `anyOf: [X, null]`; the validators reject null, so
    the document keeps only the X branch (the field stays optional: it is not `required`).
    """
    branches = schema.pop("anyOf", None)
    if branches is None:
        return
    kept = [branch for branch in branches if branch.get("type") != "null"]
    if len(kept) == 1:
        schema.update(kept[0])
    else:
        schema["anyOf"] = kept


# SQLModel's `Field(schema_extra=NON_NULLABLE)` passes it on to pydantic's FieldInfo.
NON_NULLABLE: dict[str, Any] = {"json_schema_extra": non_nullable}


def _frame_statuses(method: str, operation: dict[str, Any]) -> list[int]:
    """What any operation can get from the frame, whatever the domain declares."""
    statuses = [429, 503]
    if operation.get("parameters") or "requestBody" in operation:
        statuses.append(422)
    if any(p.get("in") == "path" for p in operation.get("parameters", ())):
        statuses.append(404)
    if method in _BODY_METHODS:
        statuses += [400, 413, 415]
    return statuses


def _resolve_maximums(operation: dict[str, Any], settings: Settings) -> None:
    for parameter in operation.get("parameters", ()):
        schema = parameter.get("schema", {})
        setting = schema.pop(_SETTING_MAXIMUM, None)
        if setting is None:
            continue
        # On the numeric branch of `anyOf: [integer, null]` (an optional parameter), else here.
        numeric = [b for b in schema.get("anyOf", ()) if b.get("type") in ("integer", "number")]
        for branch in numeric or [schema]:
            branch["maximum"] = getattr(settings, setting)


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_INT64 = (-(2**63), 2**63 - 1)


def _integer_bounds(node: Any) -> None:
    """Integral bounds of integer schemas back to JSON integers, within the 64-bit range.

    FastAPI's OpenAPI model types bounds as float, which rounds the ids' 2**63 - 1 up to 2**63:
    the document would allow ids the server refuses. Integers here are at most 64-bit (database
    ids), so clamping to that range restores the exact bound.
    """
    if isinstance(node, list):
        for child in node:
            _integer_bounds(child)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "integer":
        for key in _BOUNDS:
            value = node.get(key)
            if isinstance(value, float) and value.is_integer():
                node[key] = min(max(int(value), _INT64[0]), _INT64[1])
    for child in node.values():
        _integer_bounds(child)


def _add_links(paths: dict[str, Any]) -> None:
    """Link a collection's 201 to every operation on its item path (`/x` → `/x/{id}`).

    The created resource's `id` fills the item path's parameter: the stateful tests (and client
    generators) follow POST → GET/PATCH/DELETE without guessing ids.
    """
    for path, item in paths.items():
        created = item.get("post", {}).get("responses", {}).get("201")
        if created is None:
            continue
        for other, other_item in paths.items():
            match = _PATH_PARAM.search(other)
            if match is None or other[: match.start()].rstrip("/") != path:
                continue
            for method in _METHODS:
                target = other_item.get(method)
                if target is None or "operationId" not in target:
                    continue
                created.setdefault("links", {})[target["operationId"]] = {
                    "operationId": target["operationId"],
                    "parameters": {match.group(1): "$response.body#/id"},
                }


def build_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The document FastAPI generates, made to describe what the app actually serves."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    paths: dict[str, Any] = doc.get("paths", {})
    for item in paths.values():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            _resolve_maximums(operation, settings)
            responses = operation.setdefault("responses", {})
            for status in _frame_statuses(method, operation):
                # Replaces FastAPI's 422 (HTTPValidationError as application/json): not what's sent.
                if status == 422 or str(status) not in responses:
                    responses[str(status)] = problem_response(status)
    _add_links(paths)
    _integer_bounds(doc)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    return doc


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Serve `build_openapi` at /openapi.json, built on first use and kept (as FastAPI does)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, settings)
        return app.openapi_schema

    replace: Callable[[], dict[str, Any]] = openapi
    app.openapi = replace  # type: ignore[method-assign]
