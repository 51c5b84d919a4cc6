"""`GET /metrics`: every process's metrics; OpenMetrics with exemplars when the scraper asks."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

from anyio import to_thread
from prometheus_client import REGISTRY, CollectorRegistry, Metric, PlatformCollector
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

from floodgate.telemetry import multiprocess
from floodgate.telemetry.exemplars import ExemplarStore, attach


class _Snapshot:
    """A collector over one source (the default registry or the multiprocess files) + exemplars."""

    def __init__(self, exemplars: ExemplarStore, path: Path | None) -> None:
        self.exemplars = exemplars
        self.path = path
        self._extra: list[object] = []
        if path is not None:
            # Registered nowhere else in multiprocess mode: python_info and per-process metrics.
            self._extra = [PlatformCollector(registry=None), multiprocess.ServerProcessCollector()]

    def collect(self) -> Iterable[Metric]:
        if self.path is None:
            families: Iterable[Metric] = REGISTRY.collect()
        else:
            families = multiprocess.collect_locked(self.path)
            for extra in self._extra:
                families = [*families, *extra.collect()]  # type: ignore[attr-defined]
        return list(attach(families, self.exemplars.snapshot()))


def build_registry(exemplars: ExemplarStore) -> CollectorRegistry:
    """The registry `/metrics` renders: multiprocess-aware, with exemplars attached."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(exemplars, multiprocess.directory()))
    return registry


def render(
    registry: CollectorRegistry, accept: str, accept_encoding: str
) -> tuple[bytes, dict[str, str]]:
    encoder, content_type = choose_encoder(accept)
    body = encoder(registry)
    headers = {"Content-Type": content_type, "Cache-Control": "no-store"}
    if "gzip" in accept_encoding:
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return body, headers


def metrics_endpoint(registry: CollectorRegistry) -> object:
    async def metrics(request: Request) -> Response:
        # Reading every worker's files is blocking I/O: keep it off the event loop.
        body, headers = await to_thread.run_sync(
            render,
            registry,
            request.headers.get("accept", ""),
            request.headers.get("accept-encoding", ""),
        )
        return Response(body, headers=headers)

    return metrics
