"""RFC 9457 problem details for FastAPI: exceptions become `application/problem+json` responses.

The bytes come from `floodgate.web.problem_body`, the writer the pure-ASGI layers share.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from floodgate.db.unavailable import describe, is_unavailable
from floodgate.errors import ConflictError, DomainError, NotFoundError, UnknownReferenceError
from floodgate.resilience import RateLimitedLog
from floodgate.web.problem_body import PROBLEM_JSON, problem_body

logger = logging.getLogger("floodgate.errors")

# A dependency that cannot be reached, not a fault of the request or of our code: 503 with
# Retry-After (clients, proxies and retry policies treat it as transient), logged without a
# stack trace and at most once per 10 s, so an outage does not bury the log. Which errors those
# are is `is_unavailable`'s call; these are the bases its errors derive from (the handler gets the
# exception first and passes on whatever is not a connection problem: a bug stays a 500).
MAYBE_UNAVAILABLE: tuple[type[Exception], ...] = (
    sqlalchemy.exc.SQLAlchemyError,  # DBAPIError (any wrapped driver error), pool TimeoutError
    asyncpg.PostgresError,  # the hot reads' own driver errors (SQLSTATE 08, 57P0x, 53300)
    asyncpg.InterfaceError,  # the connection is closed
    asyncpg.InternalClientError,  # a connection left mid-protocol by a dropped server
    sqlite3.Error,  # hot reads on SQLite (floodgate.db.sqlite_reads): locked, unopenable
    OSError,  # ConnectionError, TimeoutError, socket.gaierror: connecting failed
)
RETRY_AFTER_S = 1


class Problem(Exception):
    """A client-facing error; subclasses fix the status and type."""

    status: int = 400
    type_slug: str = "bad-request"

    def __init__(self, detail: str, *, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = dict(extra or {})


class NotFound(Problem):
    status = 404
    type_slug = "not-found"


class Conflict(Problem):
    status = 409
    type_slug = "conflict"


class InvalidParameter(Problem):
    """A request parameter that passed type validation but is still unusable (e.g. a bad cursor)."""

    status = 422
    type_slug = "validation-error"

    def __init__(self, field: Sequence[str | int], message: str) -> None:
        loc = ".".join(str(part) for part in field)
        super().__init__(
            f"{loc}: {message}", extra={"errors": [{"loc": list(field), "msg": message}]}
        )


def problem_response(
    status: int,
    detail: str,
    *,
    type_slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    body = problem_body(status, detail, type_slug=type_slug, extra=extra)
    return Response(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the whole input back (it may be large or secret): location, message, type.
    return [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
        for err in exc.errors()
    ]


async def _on_problem(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.detail, type_slug=exc.type_slug, extra=exc.extra)


async def _on_domain_error(request: Request, exc: Exception) -> Response:
    """Data functions' outcomes (`floodgate.errors`) as problems: the one mapping of them."""
    assert isinstance(exc, DomainError)
    problem: Problem
    if isinstance(exc, UnknownReferenceError):
        problem = InvalidParameter(["body", exc.field], exc.detail)  # references come in bodies
    elif isinstance(exc, ConflictError):
        problem = Conflict(exc.detail)
    elif isinstance(exc, NotFoundError):
        problem = NotFound(exc.detail)
    else:
        problem = Problem(exc.detail)
    return await _on_problem(request, problem)


async def _on_validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors[:5])
    return problem_response(
        422, f"invalid request: {fields}", type_slug="validation-error", extra={"errors": errors}
    )


async def _on_http(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(exc.status_code, detail, headers=exc.headers)


def unavailable_response() -> Response:
    """The 503 every unreachable dependency gets."""
    return problem_response(
        503,
        "a service this request needs is unavailable; retry shortly",
        type_slug="unavailable",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


def log_unavailable(log: RateLimitedLog, method: str, path: str, exc: BaseException) -> None:
    """One WARNING line, rate-limited, without a traceback, the SQL or its parameters."""
    log.warning("dependency unavailable on %s %s: %s", method, path, describe(exc))


async def _on_maybe_unavailable(request: Request, exc: Exception) -> Response:
    if not is_unavailable(exc):
        # A bug (a bad statement, a constraint we do not map): on to the 500 layer, which logs
        # it once with its traceback; telemetry on the way records the exception on the span.
        raise exc
    log_unavailable(request.app.state.unavailable_log, request.method, request.url.path, exc)
    return unavailable_response()


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(DomainError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.state.unavailable_log = RateLimitedLog(logger)
    for kind in MAYBE_UNAVAILABLE:
        app.add_exception_handler(kind, _on_maybe_unavailable)
    # No handler for Exception: Starlette would run it in ServerErrorMiddleware, which re-raises
    # after the 500 (a second traceback from the server, the keep-alive connection closed).
    # `floodgate.web.unhandled.UnhandledErrorMiddleware` answers those instead.
