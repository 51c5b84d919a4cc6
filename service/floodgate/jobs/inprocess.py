"""Jobs without a Redis (`FLOODGATE_LIMITS_URL=memory://`, `make run`): each enqueue becomes a task
of this process that goes through the same row hooks, retries and dead-lettering as a worker.

Development only: nothing survives a restart (rows left `queued` or `running` stay so), and the
jobs share the API's event loop. Production runs `floodgate worker` against the shared Redis.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from floodgate.jobs.backoff import backoff_delay
from floodgate.jobs.entry import JobContext
from floodgate.jobs.rows import JobRows
from floodgate.jobs.tracing import current_traceparent
from floodgate.telemetry.logs import LOG_FIELDS

log = logging.getLogger(__name__)


class InProcessQueue:
    def __init__(
        self,
        rows: JobRows,
        *,
        queue: str = "default",
        max_deliveries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
    ) -> None:
        self._rows = rows
        self._handlers = rows.handlers()
        self._queue = queue
        self._max_deliveries = max_deliveries
        self._backoff = (backoff_base_s, backoff_max_s)
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)

    async def enqueue(
        self,
        job_id: str,
        job_type: str,
        *,
        attempt: int = 0,
        traceparent: str | None = None,
        delay_s: float = 0,
    ) -> str:
        entry = f"{int(time.time() * 1000)}-{next(self._ids)}"
        traceparent = traceparent or current_traceparent()
        task = asyncio.create_task(self._run(job_id, job_type, traceparent, delay_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return entry

    async def idle(self) -> None:
        """Wait until every job enqueued so far has finished (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(
        self, job_id: str, job_type: str, traceparent: str | None, delay_s: float
    ) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        LOG_FIELDS.set({"job_id": job_id, "job_type": job_type})  # this task's lines name the job
        for delivery in range(1, self._max_deliveries + 1):
            ctx = JobContext(
                job_id=job_id,
                type=job_type,
                attempt=delivery,
                traceparent=traceparent,
                entry_id=f"mem-{next(self._ids)}",  # each delivery is a new entry, as a retry is
                queue=self._queue,
                enqueued_at=time.time(),
            )
            try:
                if await self._rows.on_start(ctx) is False:
                    return
                handler = self._handlers.get(job_type)
                if handler is None:
                    raise LookupError(f"no handler for job type {job_type!r}")
                await handler(ctx)
                await self._rows.on_success(ctx)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if delivery == self._max_deliveries:
                    await self._rows.on_dead(ctx, error)
                    return
                base_s, max_s = self._backoff
                delay = backoff_delay(delivery, base_s=base_s, max_s=max_s)
                log.info("job %s failed (%s); retrying in %.1f s", job_id, error, delay)
                await self._rows.on_retry(ctx, delay, error)
                await asyncio.sleep(delay)
