"""The worker's /healthz: ok while every consumer loop steps, 503 once one has not for too long."""

from __future__ import annotations

import time

import httpx

from floodgate.process.worker_admin import admin_app


async def _healthz(steps: list[float]) -> httpx.Response:
    app = admin_app(lambda: steps, stall_after_s=30.0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://worker"
    ) as http:
        return await http.get("/healthz")


async def test_healthy_while_every_loop_steps() -> None:
    now = time.monotonic()
    response = await _healthz([now, now - 5])
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_a_stalled_loop_fails_the_probe() -> None:
    now = time.monotonic()
    response = await _healthz([now, now - 45])
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "stalled"
    assert body["seconds_since_step"][0] >= 45
