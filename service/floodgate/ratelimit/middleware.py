"""`RateLimitMiddleware`: pure ASGI (not BaseHTTPMiddleware: no extra task, no body buffering)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from floodgate.ratelimit.limiter import RateLimiter

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RateLimitMiddleware:
    """Applies `limiter` to HTTP requests; everything else (websocket, lifespan) passes untouched.

    Allowed requests get the RateLimit-Policy / RateLimit fields (and X-RateLimit-* when enabled)
    added to their response; rejected ones are answered here with 429 (or 503 when a fail-closed
    policy cannot be checked) and an application/problem+json body, without reaching the app.
    """

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        decision = await self.limiter.check(scope)
        if decision is None:
            await self.app(scope, receive, send)
            return
        if decision.status:
            await send(
                {
                    "type": "http.response.start",
                    "status": decision.status,
                    "headers": decision.headers,
                }
            )
            await send({"type": "http.response.body", "body": decision.body})
            return
        extra = decision.headers
        if not extra:
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_limits)
