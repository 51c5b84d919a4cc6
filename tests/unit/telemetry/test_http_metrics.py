"""The http_* families: the instrumentator's contract (names, labels, help, buckets), our rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from floodgate.telemetry.exemplars import ExemplarStore
from floodgate.telemetry.metrics import IN_FLIGHT_PUBLISH_INTERVAL, HttpMetrics
from floodgate.telemetry.middleware import ROUTE_TEMPLATE_KEY, TelemetryMiddleware
from tests.unit.telemetry.conftest import build_app, sample

REQUESTS = [
    ("GET", "/items/1"),
    ("GET", "/items/2"),
    ("GET", "/items/0"),
    ("POST", "/items"),
    ("GET", "/missing"),
    ("GET", "/boom"),
]


def _instrumentator_app(registry: CollectorRegistry) -> FastAPI:
    app = build_app(HttpMetrics(CollectorRegistry()))  # same routes; ours records elsewhere
    Instrumentator(
        registry=registry,
        should_group_status_codes=True,
        excluded_handlers=["/healthz", "/readyz", "/metrics"],
    ).instrument(app)
    return app


async def _drive(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for method, path in REQUESTS:
            await client.request(method, path)


def _shape(registry: CollectorRegistry) -> dict[str, tuple[str, str, frozenset[tuple[str, ...]]]]:
    shape = {}
    for family in registry.collect():
        # The instrumentator registers its in-progress gauge (same name, `inprogress_name`'s
        # default) in the global registry whatever registry it is given: compared by name below.
        if family.name.startswith("http_") and family.name != "http_requests_inprogress":
            keys = frozenset(
                (s.name, *sorted(k for k in s.labels if k != "le")) for s in family.samples
            )
            shape[family.name] = (family.type, family.documentation, keys)
    return shape


def _values(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        if family.name.startswith("http_") and family.name != "http_requests_inprogress"
        for s in family.samples
        if not s.name.endswith(("_sum", "_created")) and "duration" not in s.name
    }


async def test_same_families_and_counts_as_the_instrumentator() -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    await _drive(_instrumentator_app(theirs))
    await _drive(build_app(HttpMetrics(ours)))
    assert _shape(ours) == _shape(theirs)
    assert sample(ours, "http_requests_inprogress") == 0
    assert _values(ours) == _values(theirs)
    buckets = {
        (s.name, s.labels["le"])
        for registry in (theirs, ours)
        for f in registry.collect()
        for s in f.samples
        if s.name.endswith("_bucket")
    }
    assert {le for _, le in buckets} == {
        le for name, le in buckets if name.startswith("http_request_duration")
    }


async def test_templated_handlers_grouped_status_and_exclusions(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    for _ in range(3):
        await client.get("/items/7")
    await client.get("/items/0")
    await client.get("/healthz")
    await client.get("/nothing/here")
    total = "http_requests_total"
    assert sample(registry, total, method="GET", status="2xx", handler="/items/{item_id}") == 3
    assert sample(registry, total, method="GET", status="4xx", handler="/items/{item_id}") == 1
    assert sample(registry, total, method="GET", status="4xx", handler="none") == 1
    assert sample(registry, total, method="GET", status="2xx", handler="/healthz") == 0
    assert sample(registry, "http_request_duration_highr_seconds_count") == 5
    assert sample(registry, "http_requests_inprogress") == 0


async def test_unhandled_exception_is_a_5xx(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    assert sample(registry, "http_requests_total", method="GET", status="5xx", handler="/boom") == 1


async def test_invented_methods_do_not_create_series(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    for method in ("FOO", "BAR", "BAZ"):
        await client.request(method, "/items")
    methods = {
        s.labels["method"]
        for f in registry.collect()
        if f.name == "http_requests"
        for s in f.samples
    }
    assert methods == {"_OTHER"}


async def test_sizes_are_body_bytes(client: httpx.AsyncClient, registry: CollectorRegistry) -> None:
    body = b'{"a": 1}'
    response = await client.post("/items", content=body)
    assert sample(registry, "http_request_size_bytes_sum", handler="/items") == len(body)
    sent = len(response.content)
    assert sample(registry, "http_response_size_bytes_sum", handler="/items") == sent


@pytest.mark.usefixtures("spans")
async def test_sampled_requests_leave_exemplars(http_metrics: HttpMetrics) -> None:
    store = ExemplarStore()
    transport = httpx.ASGITransport(app=build_app(http_metrics, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.get("/items/3")
    latest = store.snapshot()
    names = {key[0] for key in latest}
    assert names == {"http_request_duration_highr_seconds", "http_request_duration_seconds"}
    assert all(len(trace_id) == 32 for trace_id, _, _ in latest.values())


@pytest.mark.usefixtures("spans")
async def test_other_workers_see_a_requests_exemplars_all_at_once(
    http_metrics: HttpMetrics, tmp_path: Path
) -> None:
    """Another worker answering the scrape reads this one's file: a request's exemplars on both
    latency histograms reach it in the same write."""
    store = ExemplarStore(tmp_path, flush_interval=60)
    transport = httpx.ASGITransport(app=build_app(http_metrics, store))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.get("/items/3")
    other_worker = ExemplarStore(tmp_path)
    names = {key[0] for key in other_worker.snapshot()}
    assert names == {"http_request_duration_highr_seconds", "http_request_duration_seconds"}


async def test_in_flight_gauge_follows_requests(
    http_metrics: HttpMetrics, registry: CollectorRegistry
) -> None:
    app = build_app(http_metrics)
    entered, release = asyncio.Event(), asyncio.Event()

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        entered.set()
        await release.wait()
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        pending = [asyncio.create_task(client.get("/slow")) for _ in range(3)]
        await entered.wait()
        for _ in range(100):  # published within IN_FLIGHT_PUBLISH_INTERVAL
            if sample(registry, "http_requests_inprogress") == 3:
                break
            await asyncio.sleep(0.01)
        assert sample(registry, "http_requests_inprogress") == 3
        release.set()
        await asyncio.gather(*pending)
        await asyncio.sleep(IN_FLIGHT_PUBLISH_INTERVAL * 2)
    assert sample(registry, "http_requests_inprogress") == 0


class _AnswersBeforeRouting:
    """Like a rate limiter (429, no template known) or a response cache (annotates its template)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/items/429":
            await PlainTextResponse("slow down", 429)(scope, receive, send)
        elif scope["path"] == "/items/cached":
            scope[ROUTE_TEMPLATE_KEY] = "/items/{item_id}"
            await PlainTextResponse("from cache")(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def test_responses_sent_before_routing_keep_their_template(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def get_item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    app.add_middleware(_AnswersBeforeRouting)
    app.add_middleware(
        TelemetryMiddleware, metrics=HttpMetrics(registry), exemplars=ExemplarStore()
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/items/429")).status_code == 429
        assert (await client.get("/items/cached")).text == "from cache"
        await client.get("/elsewhere")
    total = "http_requests_total"
    assert sample(registry, total, method="GET", status="4xx", handler="/items/{item_id}") == 1
    assert sample(registry, total, method="GET", status="2xx", handler="/items/{item_id}") == 1
    assert sample(registry, total, method="GET", status="4xx", handler="none") == 1
