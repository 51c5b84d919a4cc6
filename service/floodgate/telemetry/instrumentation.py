"""Child spans and metrics for the two clients a request talks to: SQLAlchemy engines and Redis.

Spans are only ever children of a recording (sampled) span: a query outside a sampled request costs
one context lookup and never starts an orphan trace of its own.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext, ExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from floodgate.telemetry import tracing
from floodgate.telemetry.metrics import RedisTimer, db_pool_metrics

_SPAN_ATTR: Final = "_floodgate_span"
_TARGET = re.compile(
    r"^\s*(?:SELECT\b.*?\bFROM|INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?([A-Za-z_][\w.]*)",
    re.IGNORECASE | re.DOTALL,
)

R = TypeVar("R")


def _recording_tracer() -> trace.Tracer | None:
    active = tracing.ACTIVE
    if active is None or not trace.get_current_span().is_recording():
        return None
    return active.tracer


# --- SQLAlchemy --------------------------------------------------------------------------------


def _engine_attributes(engine: Engine) -> tuple[dict[str, Any], str]:
    """The span attributes every query of `engine` shares, and the fallback span name."""
    url = engine.url
    base: dict[str, Any] = {"db.system.name": engine.dialect.name}
    if url.database:
        base["db.namespace"] = url.database
    if url.host:
        base["server.address"] = url.host
        if url.port:
            base["server.port"] = url.port
    return base, url.database or engine.dialect.name


def _start_query_span(
    tracer: trace.Tracer, base: dict[str, Any], namespace: str, statement: str
) -> trace.Span:
    operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    attributes = dict(base)
    # Parameterised text only: bound values (user data, secrets) never reach a span.
    attributes["db.query.text"] = statement
    attributes["db.operation.name"] = operation
    target = _TARGET.match(statement)
    if target:
        attributes["db.collection.name"] = target.group(1)
    name = f"{operation} {target.group(1) if target else namespace}"
    return tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def _fail_span(span: trace.Span, error: BaseException) -> None:
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(StatusCode.ERROR, type(error).__qualname__)


@contextmanager
def driver_query_span(engine: AsyncEngine, statement: str) -> Iterator[None]:
    """The query span for SQL sent on the raw driver connection (no engine events fire there)."""
    tracer = _recording_tracer()
    if tracer is None:
        yield
        return
    base, namespace = _engine_attributes(engine.sync_engine)
    span = _start_query_span(tracer, base, namespace, statement)
    try:
        yield
    except BaseException as error:
        _fail_span(span, error)
        raise
    finally:
        span.end()


def instrument_engine(engine: AsyncEngine) -> AsyncEngine:
    """Query spans (children of the request span) and pool gauges for one engine. Call once."""
    sync_engine = engine.sync_engine
    base, namespace = _engine_attributes(sync_engine)

    def before_cursor_execute(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        tracer = _recording_tracer()
        if tracer is None or context is None:
            return
        setattr(context, _SPAN_ATTR, _start_query_span(tracer, base, namespace, statement))

    def after_cursor_execute(
        conn: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext | None,
        executemany: bool,
    ) -> None:
        span = getattr(context, _SPAN_ATTR, None)
        if span is not None:
            span.end()
            setattr(context, _SPAN_ATTR, None)

    def handle_error(exception_context: ExceptionContext) -> None:
        span = getattr(exception_context.execution_context, _SPAN_ATTR, None)
        if span is None:
            return
        _fail_span(span, exception_context.original_exception)
        span.end()
        setattr(exception_context.execution_context, _SPAN_ATTR, None)

    event.listen(sync_engine, "before_cursor_execute", before_cursor_execute)
    event.listen(sync_engine, "after_cursor_execute", after_cursor_execute)
    event.listen(sync_engine, "handle_error", handle_error)
    _instrument_pool(engine)
    return engine


def _instrument_pool(engine: AsyncEngine) -> None:
    pool = engine.sync_engine.pool
    metrics = db_pool_metrics()
    in_use = metrics.connections.labels("in_use")
    idle = metrics.connections.labels("idle")
    if not isinstance(pool, QueuePool):
        # StaticPool / NullPool (SQLite in memory, tests): nothing to saturate.
        return
    max_overflow = max(getattr(pool, "_max_overflow", 0), 0)
    metrics.max_connections.set(pool.size() + max_overflow)

    scheduled = False

    def refresh() -> None:
        nonlocal scheduled
        scheduled = False
        in_use.set(pool.checkedout())
        idle.set(pool.checkedin())

    def on_change(*_: Any) -> None:
        # Pool events fire before the pool updates its own counts (a checked-in connection is not
        # back in the queue yet): read them once the current step is done, at most once per tick.
        nonlocal scheduled
        if scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            refresh()
            return
        scheduled = True
        loop.call_soon(refresh)

    for name in ("checkout", "checkin", "connect", "close", "close_detached", "detach"):
        event.listen(engine.sync_engine, name, on_change)


# --- Redis -------------------------------------------------------------------------------------


def instrument_redis(client: R, *, role: str) -> R:
    """Latency histogram for every command and pipeline, and child spans inside sampled requests.

    `client` is a `redis.asyncio.Redis`; its instance methods are wrapped, nothing global is
    patched.
    Scripts (`register_script`) go through `execute_command` (EVALSHA) and are covered.
    """
    timer = RedisTimer(role)
    pool = getattr(client, "connection_pool", None)
    kwargs: dict[str, Any] = getattr(pool, "connection_kwargs", {})
    base: dict[str, Any] = {"db.system.name": "redis", "floodgate.redis.role": role}
    if kwargs.get("host"):
        base["server.address"] = str(kwargs["host"])
    if kwargs.get("port"):
        base["server.port"] = int(kwargs["port"])
    if kwargs.get("db") is not None:
        base["db.namespace"] = str(kwargs["db"])

    async def timed(
        command: str, call: Callable[[], Awaitable[Any]], extra: dict[str, Any] | None = None
    ) -> Any:
        tracer = _recording_tracer()
        span = token = None
        if tracer is not None:
            attributes = {**base, "db.operation.name": command}
            if extra:
                attributes.update(extra)
            span = tracer.start_span(command, kind=SpanKind.CLIENT, attributes=attributes)
            token = otel_context.attach(trace.set_span_in_context(span))
        started = time.perf_counter()
        try:
            return await call()
        except Exception as exc:
            timer.error()
            if span is not None:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(StatusCode.ERROR, type(exc).__qualname__)
            raise
        finally:
            timer.observe(command, time.perf_counter() - started)
            if span is not None and token is not None:
                otel_context.detach(token)
                span.end()

    execute_command = client.execute_command  # type: ignore[attr-defined]

    async def traced_execute_command(*args: Any, **options: Any) -> Any:
        name = args[0] if args else "UNKNOWN"
        command = (name.decode() if isinstance(name, bytes) else str(name)).upper()
        return await timed(command, lambda: execute_command(*args, **options))

    make_pipeline = client.pipeline  # type: ignore[attr-defined]

    def traced_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = make_pipeline(*args, **kwargs)
        execute = pipe.execute

        async def traced_execute(*a: Any, **kw: Any) -> Any:
            size = len(getattr(pipe, "command_stack", ()))
            return await timed(
                "PIPELINE", lambda: execute(*a, **kw), {"db.operation.batch.size": size}
            )

        vars(pipe)["execute"] = traced_execute
        return pipe

    vars(client)["execute_command"] = traced_execute_command
    vars(client)["pipeline"] = traced_pipeline
    return client
