"""Prometheus metric families: HTTP (prometheus-fastapi-instrumentator's names), DB pool, Redis.

The `http_*` families carry exactly the names, labels, help texts and buckets of the
instrumentator's default set (so its dashboards and alerts work unchanged), recorded by our own
middleware with label children bound once per (method, status, handler), not per request.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.utils import floatToGoString as _float_to_go_string

from floodgate.telemetry.exemplars import ExemplarStore

INF: Final = float("inf")
_le: Any = _float_to_go_string  # untyped in prometheus_client; the `le` label text it exposes
# prometheus-fastapi-instrumentator's defaults (metrics.default()), +Inf appended like it does.
LATENCY_HIGHR_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    7.5, 10.0, 30.0, 60.0, INF,
)  # fmt: skip
LATENCY_LOWR_BUCKETS: Final = (0.1, 0.5, 1.0, INF)
REDIS_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, INF,
)  # fmt: skip
# Methods outside this set are recorded as _OTHER (OpenTelemetry's rule): no label explosion from
# clients inventing methods.
KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
UNTEMPLATED_HANDLER: Final = "none"  # the instrumentator's should_group_untemplated value
IN_FLIGHT_PUBLISH_INTERVAL: Final = 0.05  # seconds


@dataclass(frozen=True, slots=True)
class _Series:
    requests: Any
    latency: Any
    request_size: Any
    response_size: Any
    latency_labels: tuple[tuple[str, str], ...]


class HttpMetrics:
    """The instrumentator's five families plus its in-progress gauge, recorded in one call."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.requests = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            ("method", "status", "handler"),
            registry=registry,
        )
        self.request_size = Summary(
            "http_request_size_bytes",
            "Content length of incoming requests by handler. Only value of header is respected. "
            "Otherwise ignored. No percentile calculated. ",
            ("handler",),
            registry=registry,
        )
        self.response_size = Summary(
            "http_response_size_bytes",
            "Content length of outgoing responses by handler. Only value of header is respected. "
            "Otherwise ignored. No percentile calculated. ",
            ("handler",),
            registry=registry,
        )
        self.latency_highr = Histogram(
            "http_request_duration_highr_seconds",
            "Latency with many buckets but no API specific labels. Made for more accurate "
            "percentile calculations. ",
            buckets=LATENCY_HIGHR_BUCKETS,
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler. Made to be only used if aggregation by "
            "handler is important. ",
            ("method", "handler"),
            buckets=LATENCY_LOWR_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "http_requests_inprogress",
            "Number of HTTP requests in progress.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._series: dict[tuple[str, int, str], _Series] = {}
        self._in_flight = 0
        self._publish_scheduled = False
        self._highr_le: tuple[str, ...] = tuple(_le(b) for b in LATENCY_HIGHR_BUCKETS)
        self._lowr_le: tuple[str, ...] = tuple(_le(b) for b in LATENCY_LOWR_BUCKETS)

    def request_started(self) -> None:
        self._in_flight += 1
        self._publish_in_flight_soon()

    def request_finished(self) -> None:
        self._in_flight -= 1
        self._publish_in_flight_soon()

    def _publish_in_flight_soon(self) -> None:
        # The gauge is a sample of an instantaneous value: writing it (an mmap write under
        # gunicorn) twice per request buys nothing over publishing it a few times per second.
        if self._publish_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._publish_in_flight()
            return
        self._publish_scheduled = True
        loop.call_later(IN_FLIGHT_PUBLISH_INTERVAL, self._publish_in_flight)

    def _publish_in_flight(self) -> None:
        self._publish_scheduled = False
        self.in_progress.set(self._in_flight)

    def _bind(self, method: str, status_code: int, handler: str) -> _Series:
        status = f"{status_code // 100}xx"
        series = _Series(
            requests=self.requests.labels(method, status, handler),
            latency=self.latency.labels(method, handler),
            request_size=self.request_size.labels(handler),
            response_size=self.response_size.labels(handler),
            latency_labels=(("handler", handler), ("method", method)),
        )
        self._series[(method, status_code, handler)] = series
        return series

    def observe(
        self,
        method: str,
        status_code: int,
        handler: str,
        duration: float,
        request_bytes: int,
        response_bytes: int,
        exemplars: ExemplarStore | None = None,
        trace_id: str | None = None,
    ) -> None:
        series = self._series.get((method, status_code, handler))
        if series is None:
            series = self._bind(method, status_code, handler)
        series.requests.inc()
        series.request_size.observe(request_bytes)
        series.response_size.observe(response_bytes)
        series.latency.observe(duration)
        self.latency_highr.observe(duration)
        if trace_id is not None and exemplars is not None:
            highr = self._highr_le[bisect.bisect_left(LATENCY_HIGHR_BUCKETS, duration)]
            lowr = self._lowr_le[bisect.bisect_left(LATENCY_LOWR_BUCKETS, duration)]
            exemplars.record(
                (
                    ("http_request_duration_highr_seconds", (), highr),
                    ("http_request_duration_seconds", series.latency_labels, lowr),
                ),
                trace_id,
                duration,
            )


@cache
def http_metrics() -> HttpMetrics:
    """The process-wide HTTP families in the default registry (created on first use)."""
    return HttpMetrics()


# --- database pool -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DbPoolMetrics:
    connections: Gauge
    max_connections: Gauge


@cache
def db_pool_metrics() -> DbPoolMetrics:
    return DbPoolMetrics(
        connections=Gauge(
            "floodgate_db_pool_connections",
            "Database connections held by the pools of live processes, by state "
            "(in_use = checked out by a request, idle = open and waiting in the pool).",
            ("state",),
            multiprocess_mode="livesum",
        ),
        max_connections=Gauge(
            "floodgate_db_pool_max_connections",
            "Connections the pools of live processes may open (pool size + max overflow).",
            multiprocess_mode="livesum",
        ),
    )


# --- Redis -------------------------------------------------------------------------------------


@cache
def _redis_duration() -> Histogram:
    return Histogram(
        "floodgate_redis_command_duration_seconds",
        "Redis round trips as seen by the client (command or pipeline), by role "
        "(sidecar = the pod's cache Redis, shared = the shared Redis) and command.",
        ("role", "command"),
        buckets=REDIS_BUCKETS,
    )


@cache
def _redis_errors() -> Counter:
    return Counter(
        "floodgate_redis_command_errors_total",
        "Redis commands that raised (connection errors, timeouts, error replies), by role.",
        ("role",),
    )


class RedisTimer:
    """Latency hook for one Redis role: `observe(command, seconds)` or `with timer.time(command):`.

    Children are bound per command on first use; the histogram is shared by all roles.
    """

    def __init__(self, role: str) -> None:
        self.role = role
        self._children: dict[str, Any] = {}
        self._errors = _redis_errors().labels(role)

    def _child(self, command: str) -> Any:
        child = self._children.get(command)
        if child is None:
            child = self._children[command] = _redis_duration().labels(self.role, command)
        return child

    def observe(self, command: str, seconds: float) -> None:
        self._child(command).observe(seconds)

    def error(self) -> None:
        self._errors.inc()

    @contextmanager
    def time(self, command: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except BaseException:
            self._errors.inc()
            raise
        finally:
            self._child(command).observe(time.perf_counter() - started)

    async def timed(self, command: str, call: Callable[[], Awaitable[Any]]) -> Any:
        with self.time(command):
            return await call()
