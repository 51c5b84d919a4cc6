"""Cacheable routes: a GET path template and its declared, typed parameters, compiled for matching.

A route opts in by being declared here; nothing about the endpoint is inferred at request time. The
key of a request is the route's namespace and name plus its declared parameters, canonicalised —
undeclared query parameters are ignored, and `check_routes()` catches endpoints that read anything
the key would miss.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qsl

from starlette.convertors import CONVERTOR_TYPES
from starlette.types import Scope

from floodgate.cache.keys import KeyValue, Param, as_param, check_name, join_key

_PARAM: Final = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?}")

# (request scope, raw path parameters) -> the JSON body of the endpoint's 200, or None: "run the
# app" (anything but a plain success: a bad id, a missing row, an error).
DirectLoader = Callable[[Scope, Mapping[str, str]], Awaitable[bytes | None]]


class CachedRoute:
    """A GET endpoint whose 200 responses are cached (see the package docstring for an example).

    - `name`: the route's name in keys (`messages:message:[7]`); unique within its namespace.
    - `path`: the full path template as routed, Starlette syntax (`/api/v1/messages/{id}`).
    - `namespace`: the group `invalidate_namespace()` drops at once (`messages`).
    - `path_params` / `query_params`: name → type (`int`, `str`, `float`, `bool`, `uuid.UUID`) or
      `Param(type, default=…, many=…)`. Path parameters not listed are `str`.
    - `ttl_s`: lifetime in L1/L2 (the cache's default when None).
    - `vary`: request headers the response depends on (`accept-language`, `authorization`, …).
    - `cache_control`: this route's `Cache-Control` (the middleware's default when None).
    - `direct`: an optional loader that produces the endpoint's 200 body itself on a miss, skipping
      routing, dependency injection and response validation (most of a miss's CPU). It must give
      byte-for-byte what the endpoint gives, and None for everything else, which the app answers.
    """

    __slots__ = (
        "_path_items",
        "_query_items",
        "_vary_index",
        "cache_control",
        "direct",
        "name",
        "namespace",
        "path",
        "prefix",
        "query_params",
        "regex",
        "ttl_s",
        "vary",
    )

    def __init__(
        self,
        *,
        name: str,
        path: str,
        namespace: str,
        path_params: Mapping[str, object] | None = None,
        query_params: Mapping[str, object] | None = None,
        ttl_s: float | None = None,
        vary: Sequence[str] = (),
        cache_control: str | None = None,
        direct: DirectLoader | None = None,
    ) -> None:
        self.name = check_name("route name", name)
        self.namespace = check_name("namespace", namespace)
        if not path.startswith("/"):
            raise ValueError(f"path template {path!r} must start with '/'")
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError("ttl_s must be > 0")
        self.path = path
        self.ttl_s = ttl_s
        self.cache_control = cache_control
        self.direct = direct
        self.vary = tuple(h.lower() for h in vary)
        self._vary_index = {h.encode("latin-1"): i for i, h in enumerate(self.vary)}
        declared = {name: as_param(spec) for name, spec in (path_params or {}).items()}
        pattern, items, pos = ["^"], [], 0
        for found in _PARAM.finditer(path):
            pattern.append(re.escape(path[pos : found.start()]))
            pname, conv = found.group(1), found.group(2) or "str"
            if conv not in CONVERTOR_TYPES:
                raise ValueError(f"unknown path convertor {conv!r} in {path!r}")
            # The template's own convertor regex, exactly as Starlette routes it.
            pattern.append(f"(?P<{pname}>{CONVERTOR_TYPES[conv].regex})")
            param = declared.pop(pname, Param(str))
            if param.many:
                raise ValueError(f"path parameter {pname!r} cannot be many=True")
            items.append((pname, param))
            pos = found.end()
        if declared:
            raise ValueError(f"path_params {sorted(declared)} are not in the template {path!r}")
        pattern.append(re.escape(path[pos:]) + "$")
        self.regex = re.compile("".join(pattern))
        self.prefix = path.split("{", 1)[0]
        self._path_items: tuple[tuple[str, Param], ...] = tuple(items)
        self.query_params = {name: as_param(spec) for name, spec in (query_params or {}).items()}
        self._query_items: tuple[tuple[str, Param, KeyValue], ...] = tuple(
            (name, param, _absent(param)) for name, param in self.query_params.items()
        )
        for item in self._path_items + tuple((n, p) for n, p, _ in self._query_items):
            _ = item[1].converter  # unsupported types fail here, not on the first request

    def __repr__(self) -> str:
        return f"CachedRoute({self.namespace}:{self.name} {self.path})"

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self._path_items) + tuple(n for n, _, _ in self._query_items)

    def key(self, **params: object) -> str:
        """The key for these parameter values, what `TieredCache.invalidate(route, **params)` drops.

        Path parameters are required; query parameters left out take their default (or "absent").
        """
        unknown = set(params) - set(self.param_names)
        if unknown:
            raise TypeError(f"{self!r} has no parameters {sorted(unknown)}")
        values: list[KeyValue] = []
        for pname, param in self._path_items:
            if pname not in params:
                raise TypeError(f"{self!r} needs path parameter {pname!r}")
            values.append(param.canonical(params[pname]))
        for pname, param, default in self._query_items:
            values.append(param.canonical(params[pname]) if pname in params else default)
        return join_key(self.namespace, self.name, values)

    def request_key(self, match: re.Match[str], query_string: bytes) -> str | None:
        """The key of a matched request; None when a value cannot be canonicalised (not cached)."""
        values: list[KeyValue] = []
        try:
            for pname, param in self._path_items:
                values.append(param.converter(match.group(pname)))
            if self._query_items:
                pairs = (
                    parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
                    if query_string
                    else []
                )
                for pname, param, default in self._query_items:
                    conv = param.converter
                    if param.many:
                        found = tuple(conv(v) for k, v in pairs if k == pname)
                        values.append(found or default)
                        continue
                    text = None
                    for k, v in pairs:
                        if k == pname:
                            text = v  # the last one wins, as in Starlette's QueryParams
                    values.append(default if text is None else conv(text))
        except ValueError:
            return None
        return join_key(self.namespace, self.name, values)

    def variant(self, headers: Iterable[tuple[bytes, bytes]]) -> str:
        """Which representation: a digest of the `vary` headers' values ("" for a route without)."""
        if not self._vary_index:
            return ""
        found: list[bytes] = [b""] * len(self._vary_index)
        for name, value in headers:
            index = self._vary_index.get(name)
            if index is not None:
                found[index] = value if not found[index] else found[index] + b"," + value
        return hashlib.blake2b(b"\x00".join(found), digest_size=12).hexdigest()


def _absent(param: Param) -> KeyValue:
    """The key value of a query parameter the request leaves out."""
    if param.has_default:
        return param.canonical(param.default)
    return () if param.many else None


class RouteMatcher:
    """Finds the cached route of a path: static templates by dict, others by prefix then regex."""

    __slots__ = ("_dynamic", "_static")

    def __init__(self, routes: Iterable[CachedRoute]) -> None:
        self._static: dict[str, tuple[CachedRoute, re.Match[str]]] = {}
        self._dynamic: list[CachedRoute] = []
        seen: set[tuple[str, str]] = set()
        for route in routes:
            if (route.namespace, route.name) in seen:
                raise ValueError(f"two cached routes named {route.namespace}:{route.name}")
            seen.add((route.namespace, route.name))
            if "{" in route.path:
                self._dynamic.append(route)
            else:
                match = route.regex.match(route.path)
                assert match is not None
                self._static[route.path] = (route, match)

    def match(self, path: str) -> tuple[CachedRoute, re.Match[str]] | None:
        static = self._static.get(path)
        if static is not None:
            return static
        for route in self._dynamic:
            if path.startswith(route.prefix):
                found = route.regex.match(path)
                if found is not None:
                    return route, found
        return None


def check_routes(app: Any, routes: Iterable[CachedRoute]) -> list[str]:
    """Problems between the declarations and the FastAPI app's GET routes (empty when consistent).

    Catches what would make a cache serve a wrong answer: a template that routes nowhere, a path
    parameter declared differently, or an endpoint that reads a query parameter, header or cookie
    the key does not include. Meant for a test or an assertion at start-up.
    """
    from fastapi.routing import APIRoute, iter_route_contexts

    problems: list[str] = []
    # FastAPI keeps included routers nested; the route contexts carry each route's full path.
    by_path: dict[str, APIRoute] = {}
    for context in iter_route_contexts(app.routes):
        candidate = context.original_route
        if isinstance(candidate, APIRoute) and "GET" in (candidate.methods or ()) and context.path:
            by_path[context.path] = candidate
    for route in routes:
        api = by_path.get(route.path)
        if api is None:
            problems.append(f"{route!r}: no GET route with the path {route.path!r}")
            continue
        paths, queries, headers, cookies = _endpoint_params(api.dependant)
        declared_path = {n for n in route.param_names if n not in route.query_params}
        if paths != declared_path:
            problems.append(
                f"{route!r}: path parameters {sorted(paths)} != {sorted(declared_path)}"
            )
        missing = sorted(queries - set(route.query_params))
        if missing:
            problems.append(f"{route!r}: query parameters {missing} are read but not in the key")
        unvaried = sorted(headers - set(route.vary))
        if unvaried:
            problems.append(f"{route!r}: headers {unvaried} are read but not in vary")
        if cookies:
            problems.append(f"{route!r}: cookies {sorted(cookies)} are read (never cacheable)")
    return problems


def _endpoint_params(dependant: Any) -> tuple[set[str], set[str], set[str], set[str]]:
    paths: set[str] = set()
    queries: set[str] = set()
    headers: set[str] = set()
    cookies: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        paths.update(f.alias for f in current.path_params)
        queries.update(f.alias for f in current.query_params)
        for f in current.header_params:
            convert = getattr(f.field_info, "convert_underscores", True)
            headers.add((f.alias.replace("_", "-") if convert else f.alias).lower())
        cookies.update(f.alias for f in current.cookie_params)
        stack.extend(current.dependencies)
    return paths, queries, headers, cookies
