"""Pure-ASGI guard before routing: HEAD answered as GET, body size (413) and media type (415).

The order of refusals: a broken Content-Length (400) and an oversized body (413) before routing (the
body is never read), then the router's 404/405, then a non-JSON body (415), then validation (422).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floodgate.web.methods import serves
from floodgate.web.problem_body import problem_body, problem_headers

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing re-raises it and the handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


async def _send_problem(send: Send, status: int, detail: str) -> None:
    body = problem_body(status, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*problem_headers(body), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


async def _head_as_get(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """HEAD wherever GET is routed (RFC 9110 9.3.2): the GET's status and headers, no body.

    A copy of the scope: the server reads its own scope's method to frame the response.
    """

    async def bodiless_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    await app({**scope, "method": "GET"}, receive, bodiless_send)


class RequestGuardMiddleware:
    """Rejects bodies over `max_body_bytes` and non-JSON bodies on write methods under `prefix`.

    `routes` (the app's) tell a method the path does not serve, which the router answers 405,
    from one it does, whose non-JSON body is a 415: looked at only for a request being refused.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        routes: Sequence[BaseRoute] = (),
        prefix: str = "/api/",
        large_bodies: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Exact paths allowed a bigger body than the default (a bulk import).
        self.large_bodies = dict(large_bodies or {})
        self.routes = routes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            if scope["type"] == "http" and scope["method"] == "HEAD":
                await _head_as_get(self.app, scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        content_type: bytes | None = None
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_problem(send, 400, "Content-Length is not a number")
                    return
            elif name == b"content-type":
                if content_type is not None:
                    # A singleton field (RFC 9110): this guard and the JSON reader must not be
                    # able to read different ones.
                    await _send_problem(send, 400, "more than one Content-Type field")
                    return
                content_type = value
        limit = self.large_bodies.get(scope["path"], self.max_body_bytes)
        if declared is not None and declared > limit:
            await _send_problem(send, 413, f"request body exceeds {limit} bytes")
            return
        if (
            scope["path"].startswith(self.prefix)
            and declared != 0
            and not _is_json(content_type or b"")
            and (not self.routes or serves(self.routes, scope))
        ):
            await _send_problem(send, 415, "request body must be application/json")
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # chunked bodies carry no Content-Length
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await _send_problem(send, 413, f"request body exceeds {limit} bytes")
