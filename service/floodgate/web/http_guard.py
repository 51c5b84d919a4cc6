"""Pure-ASGI guard for request bodies: size limit (413) and media type (415), before any parsing."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class RequestGuardMiddleware:
    """Rejects bodies over `max_body_bytes` and non-JSON bodies on write methods under `prefix`."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, prefix: str = "/api/") -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        content_type = b""
        declared: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_problem(send, 400, "Content-Length is not a number")
                    return
            elif name == b"content-type":
                content_type = value
        if declared is not None and declared > self.max_body_bytes:
            await _send_problem(send, 413, f"request body exceeds {self.max_body_bytes} bytes")
            return
        if scope["path"].startswith(self.prefix) and declared != 0 and not _is_json(content_type):
            await _send_problem(send, 415, "request body must be application/json")
            return

        received = 0
        started = False
        limit = self.max_body_bytes

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
