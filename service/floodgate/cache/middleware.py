"""ResponseCacheMiddleware: serves cached GET responses before FastAPI routes the request.

A hit costs a template match, a key, a dict lookup and two `send` calls — no routing, no dependency
injection, no validation, no serialisation. A miss goes to the app once per key (single-flight
within the process, the fill lock across processes); its 200 is stored with a strong ETag.
Everything that is not a GET on a declared route passes through untouched.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floodgate.cache.entry import Headers, ResponseCodec, ResponseEntry
from floodgate.cache.etag import if_none_match_hits
from floodgate.cache.routes import CachedRoute, RouteMatcher
from floodgate.cache.tiered import Loaded, TieredCache

logger = logging.getLogger("floodgate.cache")

# What the app's JSONResponse carries besides the per-response headers (dropped below).
_JSON_HEADERS: Final = ((b"content-type", b"application/json"),)

# The scope key telemetry reads for the route template (a plain string: no import of telemetry).
ROUTE_TEMPLATE_KEY = "floodgate.route_template"

# Set per response by the server or by us; never replayed from the cache.
_DROPPED: Final = frozenset(
    {
        b"content-length",
        b"etag",
        b"cache-control",
        b"vary",
        b"date",
        b"server",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
    }
)


class _Uncached:
    """A response that is not stored: replayed to the concurrent requests if `shareable`."""

    __slots__ = ("body", "headers", "owner", "shareable", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        owner: Scope,
        shareable: bool,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.owner = owner
        self.shareable = shareable

    async def replay(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status, "headers": list(self.headers)}
        )
        await send({"type": "http.response.body", "body": self.body})


class _Compiled:
    __slots__ = ("codec", "route", "ttl", "vary")

    def __init__(self, route: CachedRoute, codec: ResponseCodec, ttl: float | None) -> None:
        self.route = route
        self.codec = codec
        self.ttl = ttl
        self.vary = frozenset(route.vary)


class ResponseCacheMiddleware:
    """Serve the declared `routes` from `cache`: `app.add_middleware(ResponseCacheMiddleware, ...)`.

    `cache_control` is the default `Cache-Control` of cached responses (a route may set its own);
    the default `no-cache` lets clients keep a copy but revalidate it (cheaply: 304) on every use,
    which is what an API whose data changes on writes wants.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: TieredCache,
        routes: Sequence[CachedRoute],
        cache_control: str = "no-cache",
    ) -> None:
        self.app = app
        self.cache = cache
        self.routes = tuple(routes)
        self._matcher = RouteMatcher(self.routes)
        self._max_body = cache.config.max_body_bytes
        self._compiled = {
            id(route): _Compiled(
                route,
                ResponseCodec(
                    cache_control=route.cache_control
                    if route.cache_control is not None
                    else cache_control,
                    vary=", ".join(route.vary),
                ),
                route.ttl_s,
            )
            for route in self.routes
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root = scope.get("root_path")
        if root and path.startswith(root):
            path = path[len(root) :]
        found = self._matcher.match(path)
        if found is None:
            await self.app(scope, receive, send)
            return
        route, match = found
        # Outer telemetry labels the request with its template even when we answer it ourselves.
        scope[ROUTE_TEMPLATE_KEY] = route.path
        key = route.request_key(match, scope["query_string"])
        if key is None:
            await self.app(scope, receive, send)
            return
        inm: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                inm = value if inm is None else inm + b"," + value
        variant = route.variant(scope["headers"]) if route.vary else ""
        entry = self.cache.l1_lookup(key, variant)
        if entry is None:
            compiled = self._compiled[id(route)]

            async def load() -> Loaded[ResponseEntry | _Uncached]:
                if route.direct is not None:
                    direct = await self._load_direct(scope, match, compiled)
                    if direct is not None:
                        return direct
                return await self._load(scope, receive, compiled)

            result: ResponseEntry | _Uncached = await self.cache.fetch(
                key, variant, load, ttl=compiled.ttl, codec=compiled.codec
            )
            if isinstance(result, _Uncached):
                if result.owner is scope or result.shareable:
                    await result.replay(send)
                else:
                    await self.app(scope, receive, send)
                return
            entry = result
        if inm is not None and if_none_match_hits(inm.decode("latin-1"), entry.etag):
            await send(
                {"type": "http.response.start", "status": 304, "headers": list(entry.headers_304)}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        # Fresh message dicts and header lists: outer middleware may mutate what we send.
        await send(
            {"type": "http.response.start", "status": 200, "headers": list(entry.headers_200)}
        )
        await send({"type": "http.response.body", "body": entry.body})

    async def _load_direct(
        self, scope: Scope, match: re.Match[str], compiled: _Compiled
    ) -> Loaded[ResponseEntry | _Uncached] | None:
        """The route's own loader; None sends the request through the app instead."""
        assert compiled.route.direct is not None
        try:
            body = await compiled.route.direct(scope, match.groupdict())
        except Exception:
            # The app answers instead, with its error handling (problem+json, logging).
            logger.debug("direct loader of %r failed", compiled.route, exc_info=True)
            return None
        if body is None or len(body) > self._max_body:
            return None
        entry = compiled.codec.entry(body, _JSON_HEADERS)
        return Loaded(entry) if entry is not None else None

    async def _load(
        self, scope: Scope, receive: Receive, compiled: _Compiled
    ) -> Loaded[ResponseEntry | _Uncached]:
        """Run the app for the leading request and capture its response whole."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                start.update(message)
            elif kind == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        status = int(start.get("status", 500))
        raw_headers = [(bytes(n).lower(), bytes(v)) for n, v in start.get("headers", ())]
        body = b"".join(chunks)
        kept, storable, shareable = self._classify(status, raw_headers, len(body), compiled)
        if storable:
            entry = compiled.codec.entry(body, kept)
            if entry is not None:
                return Loaded(entry)
        return Loaded(_Uncached(status, raw_headers, body, scope, shareable), store=False)

    def _classify(
        self, status: int, headers: list[tuple[bytes, bytes]], size: int, compiled: _Compiled
    ) -> tuple[Headers, bool, bool]:
        """(headers to keep, may it be stored, may concurrent requests get it too)."""
        storable = status == 200 and size <= self._max_body
        shareable = True
        kept: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            if name == b"set-cookie":
                return (), False, False
            if name == b"cache-control":
                directives = value.lower()
                if b"no-store" in directives or b"private" in directives:
                    return (), False, False
            elif name == b"vary":
                fields = {
                    f.strip().decode("latin-1") for f in value.lower().split(b",") if f.strip()
                }
                if not fields <= compiled.vary:
                    return (), False, False
            elif name == b"content-encoding":
                storable = False
            if name not in _DROPPED:
                kept.append((name, value))
        return tuple(kept), storable, shareable
