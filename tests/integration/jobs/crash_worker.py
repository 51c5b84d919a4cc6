"""A worker process for the crash and SIGTERM tests: its handler records its start, sleeps
SLEEP_S, then records its end. Usage:
python crash_worker.py REDIS_URL QUEUE MARKER_KEY REDELIVERY_TIMEOUT_S SLEEP_S"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as aioredis

from floodgate.jobs import JobContext, Worker


async def main(url: str, queue: str, marker: str, timeout_s: float, sleep_s: float) -> None:
    client = aioredis.from_url(url)

    async def sleepy(ctx: JobContext) -> None:
        await client.rpush(marker, f"{ctx.job_id}:{ctx.attempt}")
        await asyncio.sleep(sleep_s)
        await client.rpush(marker, f"{ctx.job_id}:done")

    worker = Worker(
        client,
        {"sleepy": sleepy},
        queue=queue,
        consumer_name="doomed",
        redelivery_timeout_s=timeout_s,
        poll_interval_s=0.05,
        stats_every_s=0,
        grace_period_s=10.0,
    )
    await worker.run(handle_signals=True)
    await client.aclose()


if __name__ == "__main__":
    url, queue, marker, timeout_s, sleep_s = sys.argv[1:6]
    asyncio.run(main(url, queue, marker, float(timeout_s), float(sleep_s)))
