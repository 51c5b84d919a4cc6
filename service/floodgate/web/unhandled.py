"""The last answer to an exception nothing else handled: a 500 problem on a connection that stays
usable, logged once with its traceback.

Starlette's ServerErrorMiddleware sends its 500 and then re-raises, so the server logs a second
traceback and closes the keep-alive connection. This layer sits just inside it and does not
re-raise; only once a response has started does it let the error through, as aborting the
connection is then the only honest end of a half-sent response (the server logs that one).
"""

from __future__ import annotations

import logging

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floodgate.db.unavailable import is_unavailable
from floodgate.resilience import RateLimitedLog
from floodgate.web.problems import log_unavailable, problem_response, unavailable_response

logger = logging.getLogger("floodgate.errors")


class UnhandledErrorMiddleware:
    """Pure ASGI: an exception from the app before its response starts becomes a 500 problem (a
    503 when it is a dependency that could not be reached) and is not re-raised."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.unavailable_log = RateLimitedLog(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            await self._answer(scope, exc)(scope, receive, send)

    def _answer(self, scope: Scope, exc: Exception) -> Response:
        method, path = scope.get("method", ""), scope.get("path", "")
        if is_unavailable(exc):  # escaped the app's handlers (raised in a middleware)
            log_unavailable(self.unavailable_log, method, path, exc)
            return unavailable_response()
        # The trace goes to the log (once, here), never to the client; nor does the request body.
        logger.error("unhandled error on %s %s", method, path, exc_info=exc)
        return problem_response(500, "the server could not complete the request")
