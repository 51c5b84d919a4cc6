"""One pure-ASGI middleware for the request's metrics, span and (sampled) access log, in one pass.

Cheaper than prometheus-fastapi-instrumentator + opentelemetry-instrumentation-fastapi while keeping
their metric names and span attributes: the route template is read from the scope after routing
(no second route matching), label children are bound once, and an unsampled request creates no span
object at all, just a context carrying its trace id for the logs.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
from collections.abc import Iterable
from time import perf_counter  # a global, not time.perf_counter: no attribute lookup per request
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, StatusCode
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from floodgate.telemetry import tracing
from floodgate.telemetry.exemplars import ExemplarStore
from floodgate.telemetry.metrics import KNOWN_METHODS, UNTEMPLATED_HANDLER, HttpMetrics

access_log = logging.getLogger("floodgate.access")
DEFAULT_EXCLUDED_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
# Middleware that answers before routing (a response cache) and knows the route template puts it
# here: the request is then recorded under its template at no cost.
ROUTE_TEMPLATE_KEY: Final = "floodgate.route_template"


def route_template(scope: Scope) -> str | None:
    """The matched route's path template (`/api/v1/users/{user_id}`), read after routing.

    FastAPI >= 0.16x keeps the full (prefixed) template on its effective route context; older
    versions copy prefixed routes, so the route's own `path_format` is complete there.
    """
    annotated: str | None = scope.get(ROUTE_TEMPLATE_KEY)
    if annotated:
        return annotated
    fastapi_scope = scope.get("fastapi")
    if fastapi_scope:
        effective = fastapi_scope.get("effective_route_context")
        if effective is not None:
            template: str | None = getattr(effective, "path_format", None)
            if template:
                return template
    route = scope.get("route")
    if route is not None:
        return getattr(route, "path_format", None) or getattr(route, "path", None)
    return None


class RouteTemplates:
    """The app's route templates, for responses sent before routing ran (429, 413, cache hits).

    Built on first use from the app's routes; a linear scan of compiled templates, paid only by
    requests that routing never saw.
    """

    def __init__(self) -> None:
        self._app: object = None
        self._compiled: list[tuple[re.Pattern[str], str]] = []

    def _build(self, app: object) -> None:
        templates: dict[str, None] = {}
        for route in getattr(app, "routes", ()):
            contexts = getattr(route, "effective_route_contexts", None)
            candidates = list(contexts()) if callable(contexts) else [route]
            for candidate in candidates:
                starlette_route = getattr(candidate, "starlette_route", None)
                template = getattr(candidate, "path_format", None) or getattr(
                    starlette_route, "path_format", None
                )
                if isinstance(template, str) and template not in DEFAULT_EXCLUDED_PATHS:
                    templates[template] = None
        self._compiled = [(compile_path(t)[0], t) for t in templates]
        self._app = app

    def match(self, scope: Scope) -> str | None:
        app = scope.get("app")
        if app is None:
            return None
        if app is not self._app:
            self._build(app)
        path = scope["path"]
        for regex, template in self._compiled:
            if regex.match(path):
                return template
        return None


class TelemetryMiddleware:
    """Records `http_*` metrics, the SERVER span and the sampled access log of HTTP requests."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics | None,
        exemplars: ExemplarStore,
        excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
        access_log_sample_rate: float = 0.0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.exemplars = exemplars
        self.excluded = frozenset(excluded_paths)
        self.access_log_sample_rate = access_log_sample_rate
        self._templates = RouteTemplates()
        self._propagation_fields = frozenset(
            f.lower().encode("latin-1") for f in propagate.get_global_textmap().fields
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded:
            await self.app(scope, receive, send)
            return
        # The responder is awaited through, not awaited itself: no second coroutine per request.
        responder = _Responder(self, scope, send)
        try:
            await self.app(scope, receive, responder.send)
        except BaseException as exc:
            responder.finish(exc)
            raise
        responder.finish(None)


class _Responder:
    """One request's telemetry: started with the request, fed by its `send`, finished once.

    The only object a recorded request allocates here (its bound `send` aside); slots keep it small.
    """

    __slots__ = (
        "_downstream",
        "_method",
        "_middleware",
        "_request_bytes",
        "_response_bytes",
        "_scope",
        "_span",
        "_started",
        "_status_code",
        "_token",
    )

    def __init__(self, middleware: TelemetryMiddleware, scope: Scope, send: Send) -> None:
        self._started = perf_counter()
        self._middleware = middleware
        self._scope = scope
        self._downstream = send
        self._status_code = 500  # what is recorded when the app fails before it starts a response
        self._response_bytes = 0
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        self._method = method
        request_bytes = 0
        carrier: dict[str, str] | None = None
        fields = middleware._propagation_fields
        for name, value in scope["headers"]:
            if name == b"content-length":
                with contextlib.suppress(ValueError):
                    request_bytes = int(value)
            elif name in fields:
                if carrier is None:
                    carrier = {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        self._request_bytes = request_bytes
        self._span: Span | None = None
        self._token: object | None = None
        active = tracing.ACTIVE
        if active is not None:
            parent_context: Context | None = None
            parent = None
            if carrier is not None:
                parent_context = propagate.extract(carrier)
                parent = trace.get_current_span(parent_context).get_span_context()
                if not parent.is_valid:
                    parent = None
            trace_id = parent.trace_id if parent is not None else random.getrandbits(128) or 1
            if active.policy.sampled(trace_id, parent):
                span = active.start_server_span(
                    method, parent_context, trace_id, _request_attributes(scope, method)
                )
                self._span = span
                self._token = otel_context.attach(trace.set_span_in_context(span, parent_context))
            else:
                self._token = otel_context.attach(
                    tracing.unsampled_context(trace_id, parent, parent_context)
                )
        metrics = middleware.metrics
        if metrics is not None:
            metrics.request_started()

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self._status_code = message["status"]
        elif kind == "http.response.body":
            self._response_bytes += len(message.get("body", b""))
        await self._downstream(message)

    def finish(self, error: BaseException | None) -> None:
        duration = perf_counter() - self._started
        middleware = self._middleware
        metrics = middleware.metrics
        if metrics is not None:
            metrics.request_finished()
        scope, method, status_code = self._scope, self._method, self._status_code
        template = route_template(scope)
        if template is None and status_code != 404:
            template = middleware._templates.match(scope)
        handler = template or UNTEMPLATED_HANDLER
        trace_id_hex: str | None = None
        span = self._span
        if span is not None:
            trace_id_hex = format(span.get_span_context().trace_id, "032x")
            _finish_span(span, method, template, status_code, error)
        if metrics is not None:
            metrics.observe(
                method,
                status_code,
                handler,
                duration,
                self._request_bytes,
                self._response_bytes,
                middleware.exemplars,
                trace_id_hex,
            )
        rate = middleware.access_log_sample_rate
        if rate > 0.0 and (status_code >= 500 or random.random() < rate):  # noqa: S311 - sampling
            _log_access(scope, method, handler, status_code, duration, self._response_bytes)
        token = self._token
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]


def _request_attributes(scope: Scope, method: str) -> dict[str, Any]:
    """HTTP server span attributes (stable semantic conventions), for sampled requests only."""
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if method == "_OTHER":
        attributes["http.request.method_original"] = scope["method"]
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = server[1]
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    for name, value in scope["headers"]:
        if name == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
        elif name == b"host":
            attributes["server.address"] = value.decode("latin-1").rsplit(":", 1)[0]
    # url.query is left out on purpose: query strings carry tokens and personal data.
    return attributes


def _finish_span(
    span: Span, method: str, template: str | None, status_code: int, error: BaseException | None
) -> None:
    if template is not None:
        span.set_attribute("http.route", template)
        span.update_name(f"{method if method != '_OTHER' else 'HTTP'} {template}")
    elif method == "_OTHER":
        span.update_name("HTTP")
    span.set_attribute("http.response.status_code", status_code)
    if error is not None:
        span.record_exception(error)
        span.set_attribute("error.type", type(error).__qualname__)
        span.set_status(StatusCode.ERROR, type(error).__qualname__)
    elif status_code >= 500:
        span.set_attribute("error.type", str(status_code))
        span.set_status(StatusCode.ERROR)
    span.end()


def _log_access(
    scope: Scope, method: str, handler: str, status_code: int, duration: float, response_bytes: int
) -> None:
    # The path is logged without its query string (tokens, personal data); never bodies or headers.
    access_log.info(
        "%s %s %d",
        method,
        scope["path"],
        status_code,
        extra={
            "http_method": method,
            "http_route": handler,
            "url_path": scope["path"],
            "http_status": status_code,
            "duration_ms": round(duration * 1000, 3),
            "response_bytes": response_bytes,
        },
    )
