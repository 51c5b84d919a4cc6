"""Ad-hoc measurement (not a test): requests/s of cache hits, bare FastAPI and fastapi-cache2.

One uvicorn worker pinned to CPU 0, `wrk -t1 -c64 -d5s` pinned to CPU 1, the same JSON body, ids
drawn at random from 2000 (after a run that requests each of them, filling the caches).

    .venv/bin/python -m bench.measure_cache_hit_path [--fc2-python /tmp/fc2/bin/python]

fastapi-cache2 runs from its own virtualenv (`python3 -m venv /tmp/fc2 && /tmp/fc2/bin/pip install
fastapi-cache2 redis "uvicorn[standard]"`); it is skipped when that interpreter is missing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from tests.support.services import free_port, start_redis, wait_for_port

from floodgate.cache import CachedRoute, ResponseCacheMiddleware, TieredCache

ROOT = Path(__file__).resolve().parents[1]
ITEM = CachedRoute(
    name="item", namespace="items", path="/items/{item_id}", path_params={"item_id": int}
)


def _item_app(cache: TieredCache | None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        if cache is not None:
            await cache.start()
        yield
        if cache is not None:
            await cache.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, object]:
        return {"id": item_id, "name": "seven"}

    if cache is not None:
        app.add_middleware(ResponseCacheMiddleware, cache=cache, routes=[ITEM])
    return app


def bare_fastapi() -> FastAPI:
    """The reference: FastAPI routing, validation and serialisation on every request."""
    return _item_app(None)


def l1_hit() -> FastAPI:
    return _item_app(TieredCache.from_settings("memory://", "memory://", default_ttl_s=600))


def l2_hit() -> FastAPI:
    # L1 off: every request is an HGET on the Redis sidecar.
    return _item_app(
        TieredCache.from_settings(
            os.environ["MEASURE_REDIS_URL"], "memory://", l1_max_entries=0, default_ttl_s=600
        )
    )


async def raw_asgi(scope: dict[str, Any], receive: Callable[..., Any], send: Any) -> None:
    """The floor: a raw ASGI app answering the same bytes."""
    if scope["type"] != "http":
        return
    body = b'{"id":7,"name":"seven"}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"23")],
        }
    )
    await send({"type": "http.response.body", "body": body})


FC2_APP = """
import os
from contextlib import asynccontextmanager
from fastapi import FastAPI
from fastapi_cache import FastAPICache
from fastapi_cache.decorator import cache
from fastapi_cache.backends.inmemory import InMemoryBackend
from fastapi_cache.backends.redis import RedisBackend
from redis import asyncio as aioredis

@asynccontextmanager
async def lifespan(app):
    url = os.environ.get("MEASURE_REDIS_URL")
    if os.environ.get("FC2_BACKEND") == "redis":
        FastAPICache.init(RedisBackend(aioredis.from_url(url)), prefix="fc2")
    else:
        FastAPICache.init(InMemoryBackend(), prefix="fc2")
    yield

app = FastAPI(lifespan=lifespan)

@app.get("/items/{item_id}")
@cache(expire=600)
async def item(item_id: int):
    return {"id": item_id, "name": "seven"}
"""


@contextmanager
def server(
    python: str, target: str, env: dict[str, str], factory: bool
) -> Iterator[tuple[int, int]]:
    port = free_port()
    cmd = [
        "taskset", "-c", "0", python, "-m", "uvicorn", target, "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    if factory:
        cmd.append("--factory")
    proc = subprocess.Popen(cmd, env={**os.environ, **env})
    try:
        wait_for_port(port, timeout=30)
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# Random ids over a key space much larger than the 64 connections: concurrent requests rarely
# share a key, so single-flight cannot turn many requests into one L2 read and flatter the figures.
WRK_RANDOM = """
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/items/" .. math.random(1, %d))
end
"""
# The warm-up walks every id in turn, so that the measured run finds them all cached.
WRK_EVERY = """
counter = 0
request = function()
  counter = counter %% %d + 1
  return wrk.format("GET", "/items/" .. counter)
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, pid: int, seconds: int, keys: int, script: Path) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) of a measured run after a warm-up run."""
    url = f"http://127.0.0.1:{port}"
    urllib.request.urlopen(f"{url}/items/1").read()
    script.write_text(WRK_EVERY % keys)
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-s", str(script), url]
    subprocess.run([*cmd, "-c8", "-d4s"], capture_output=True, check=True)  # fills the caches
    script.write_text(WRK_RANDOM % keys)
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c64", "-s", str(script), url]
    cpu_before = cpu_seconds(pid)
    out = subprocess.run([*cmd, f"-d{seconds}s"], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - cpu_before
    if "Non-2xx" in out:
        raise RuntimeError(f"errors during the run:\n{out}")
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    total = re.search(r"([0-9]+) requests in", out)
    assert rate is not None, out
    assert total is not None, out
    return float(rate.group(1)), cpu / int(total.group(1)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fc2-python", default="/tmp/fc2/bin/python")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="best of N runs per variant")
    parser.add_argument("--keys", type=int, default=2000, help="distinct ids requested at random")
    parser.add_argument("--only", default="", help="run the variants whose name contains this")
    args = parser.parse_args()
    redis = start_redis()
    env = {"MEASURE_REDIS_URL": redis.url, "PYTHONPATH": str(ROOT)}
    me = "bench.measure_cache_hit_path"
    variants: list[tuple[str, str, str, dict[str, str], bool]] = [
        ("raw ASGI hello", sys.executable, f"{me}:raw_asgi", env, False),
        ("bare FastAPI", sys.executable, f"{me}:bare_fastapi", env, True),
        ("floodgate L1 hit", sys.executable, f"{me}:l1_hit", env, True),
        ("floodgate L2 hit (Redis)", sys.executable, f"{me}:l2_hit", env, True),
    ]
    tmp = Path(tempfile.mkdtemp(prefix="fc2-"))
    if shutil.which(args.fc2_python) or Path(args.fc2_python).exists():
        (tmp / "fc2_app.py").write_text(FC2_APP)
        fc2_env = {"MEASURE_REDIS_URL": redis.url, "PYTHONPATH": str(tmp)}
        variants += [
            ("fastapi-cache2 hit (Redis)", args.fc2_python, "fc2_app:app",
             {**fc2_env, "FC2_BACKEND": "redis"}, False),
            ("fastapi-cache2 hit (memory)", args.fc2_python, "fc2_app:app",
             {**fc2_env, "FC2_BACKEND": "memory"}, False),
        ]  # fmt: skip
    variants = [v for v in variants if args.only in v[0]]
    rates: dict[str, float] = {}
    costs: dict[str, float] = {}
    try:
        # Rounds interleave the variants, so that a burst of load elsewhere on the machine hurts
        # them all alike; the best run of each is kept. CPU time per request is the steadier
        # figure on a shared machine: 1e6 / µs is the rate one free core would reach.
        for round_ in range(1, args.rounds + 1):
            for name, python, target, variant_env, factory in variants:
                with server(python, target, variant_env, factory) as (port, pid):
                    rate, cost = wrk(port, pid, args.seconds, args.keys, tmp / "random.lua")
                rates[name] = max(rates.get(name, 0.0), rate)
                costs[name] = min(costs.get(name, float("inf")), cost)
                print(
                    f"round {round_}  {name:30s} {rate:8.0f} req/s {cost:8.1f} us CPU/req",
                    flush=True,
                )
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'variant':30s} {'best req/s':>10s} {'us CPU/req':>10s} {'=> req/s/core':>14s}")
    for name in rates:
        print(f"{name:30s} {rates[name]:10.0f} {costs[name]:10.1f} {1e6 / costs[name]:14.0f}")
    if "bare FastAPI" not in rates or "floodgate L1 hit" not in rates:
        return
    for label, key in (("req/s", rates), ("CPU", costs)):
        l1 = key["floodgate L1 hit"] / key["bare FastAPI"]
        ratio = l1 if label == "req/s" else 1 / l1
        print(f"L1 hit vs bare FastAPI ({label}): {ratio:.0%} (target >= 70%)")
        fc2 = key.get("fastapi-cache2 hit (Redis)")
        if fc2 and "floodgate L2 hit (Redis)" in key:
            l2 = key["floodgate L2 hit (Redis)"] / fc2
            print(
                f"L2 hit vs fastapi-cache2 Redis hit ({label}): "
                f"{l2 if label == 'req/s' else 1 / l2:.2f}x (target >= 2x)"
            )


if __name__ == "__main__":
    main()
