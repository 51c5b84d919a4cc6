"""`floodgate worker`: one consumer of the shared Redis's job stream per process, with the domain's
job types, the row hooks, and the reconciler that re-adds entries of rows left `queued`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from floodgate.db.engine import create_engine
from floodgate.domain import job_types
from floodgate.jobs.queue import JobQueue
from floodgate.jobs.rows import JobRows
from floodgate.jobs.store import JobStore
from floodgate.jobs.submit import Submitter
from floodgate.jobs.worker import Worker
from floodgate.process.worker_admin import admin_server
from floodgate.redis_client import redis_client
from floodgate.settings import Settings
from floodgate.telemetry.tracing import shutdown_tracing, start_tracing

log = logging.getLogger("floodgate.worker")
_POLL_S = 0.25


async def reconcile_forever(
    submitter: Submitter, queues: dict[str, JobQueue], every_s: float, older_than_s: float
) -> None:
    """Rows still `queued` long after they were committed lost their entry (a failover dropped
    the XADD, or Redis was down at submit time): add it again. A duplicate runs nothing twice."""
    while True:
        await asyncio.sleep(every_s)
        try:
            for job_id, queue, job_type in await submitter.store.stale_queued(older_than_s):
                if queue in queues:
                    log.info("re-adding the entry of job %s (still queued)", job_id)
                    await submitter.add_entry(queues[queue], job_id, job_type, queue)
        except Exception:  # the next round tries again; a worker must not die of it
            log.warning("reconciling queued jobs failed", exc_info=True)


async def run_worker(
    settings: Settings,
    queues: Sequence[str],
    concurrency: int,
    *,
    admin: tuple[str, int] | None = None,
) -> None:
    """Consume `queues` until SIGTERM/SIGINT, then drain; `admin` = (host, port) serves
    `/metrics` and `/healthz` there."""
    start_tracing()  # CONSUMER spans continue the requests' traces (OTEL_* configure it)
    engine = create_engine(settings)
    store = JobStore(engine)
    rows = JobRows(store, {t.name: t for t in job_types()})
    # Reads block for _POLL_S: the socket timeout must be longer (the worker checks).
    client = redis_client(settings.limits_url, timeout_s=max(5.0, _POLL_S * 8))
    workers = [
        Worker(
            client,
            rows.handlers(),
            queue=name,
            concurrency=concurrency,
            redelivery_timeout_s=settings.jobs_redelivery_timeout_s,
            max_deliveries=settings.jobs_max_deliveries,
            backoff_base_s=settings.jobs_backoff_base_s,
            backoff_max_s=settings.jobs_backoff_max_s,
            grace_period_s=settings.graceful_timeout_s,
            poll_interval_s=_POLL_S,
            max_age_s=settings.jobs_max_age_s,
            hooks=rows,
        )
        for name in queues
    ]
    by_name = {w.queue.name: w.queue for w in workers}
    warning = await workers[0].queue.check_noeviction()
    if warning:
        log.warning("%s", warning)
    submitter = Submitter(store, by_name)
    reconciler = asyncio.create_task(
        reconcile_forever(
            submitter, by_name, settings.jobs_reconcile_after_s / 2, settings.jobs_reconcile_after_s
        )
    )
    server = None
    serving: asyncio.Task[None] | None = None
    if admin is not None:
        server = admin_server(*admin, last_steps=lambda: [w.last_step_at for w in workers])
        serving = asyncio.create_task(server.serve())
    log.info(
        "worker %s consuming %s with %d slots each",
        workers[0].name,
        ", ".join(queues),
        concurrency,
    )
    try:
        await asyncio.gather(*(w.run(handle_signals=True) for w in workers))
    finally:
        reconciler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reconciler
        if server is not None and serving is not None:
            server.should_exit = True  # after the drain: scrapes see the last jobs finish
            await serving
        await client.aclose()
        await engine.dispose()
        await asyncio.to_thread(shutdown_tracing)
