"""Method semantics the router lacks: a full `Allow` on 405, OPTIONS, relative slash redirects.

All of it runs only once routing has failed (a 405 or a 404), never on a served request. HEAD is
answered as GET by the request guard (web/http_guard.py), so HEAD is allowed wherever GET is.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from floodgate.web.problems import problem_response

_ROUTABLE = ("GET", "POST", "PUT", "PATCH", "DELETE")
# Characters a path keeps unescaped in Location (RFC 3986 pchar and "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?%"


def serves(routes: Sequence[BaseRoute], scope: Scope) -> bool:
    """Whether a route serves this path with this method (not just the path)."""
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method the request's path serves: the routed ones, HEAD with GET, and OPTIONS."""
    allowed = [m for m in _ROUTABLE if serves(routes, {**scope, "method": m})]
    if not allowed:
        return []
    if "GET" in allowed:
        allowed.insert(1, "HEAD")
    return [*allowed, "OPTIONS"]


async def _on_method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 with the path's full Allow (the router names one route's methods), or OPTIONS → 204."""
    allowed = allowed_methods(request.app.router.routes, request.scope)
    headers = {"Allow": ", ".join(allowed)}
    if request.method == "OPTIONS" and allowed:
        return Response(status_code=204, headers=headers)
    detail = exc.detail if isinstance(exc, HTTPException) else "Method Not Allowed"
    return problem_response(405, detail, headers=headers)


class RelativeSlashRedirect:
    """The router's fallback: 307 to the path with the trailing slash toggled if that one is
    routed, with a relative `Location` (path and query only: never the client's Host header)."""

    def __init__(self, routes: Sequence[BaseRoute], not_found: ASGIApp) -> None:
        self.routes = routes
        self.not_found = not_found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        target = path.rstrip("/") if path.endswith("/") else path + "/"
        # "//host" would be a network-path reference: an open redirect, never a route here.
        if scope["type"] == "http" and path != "/" and not target.startswith("//"):
            other = {**scope, "path": target}
            if any(route.matches(other)[0] is not Match.NONE for route in self.routes):
                location = quote(target, safe=_PATH_SAFE)
                if scope.get("query_string"):
                    query = scope["query_string"].decode("latin-1")
                    location += "?" + quote(query, safe=_QUERY_SAFE)
                await Response(status_code=307, headers={"Location": location})(
                    scope, receive, send
                )
                return
        await self.not_found(scope, receive, send)


def install_methods(app: FastAPI) -> None:
    """Wire the 405/OPTIONS handler and the relative redirect into `app` (after its routes)."""
    app.add_exception_handler(405, _on_method_not_allowed)
    router = app.router
    router.redirect_slashes = False
    router.default = RelativeSlashRedirect(router.routes, router.not_found)
