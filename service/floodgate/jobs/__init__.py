"""A durable job queue on Redis Streams: producers enqueue, `Worker`s consume (platform code: it
never imports `floodgate.domain`).

Produce (the API, after committing the job row)::

    queue = JobQueue(shared_redis, "default")       # no I/O; max_age_s trims the stream by age
    await queue.enqueue(job_id, "import_messages")  # traceparent taken from the current span
    await queue.enqueue(job_id, "deliver_webhook", delay_s=30)

Consume (`floodgate worker`, one Worker per process)::

    worker = Worker(shared_redis, {"import_messages": run_import}, queue="default",
                    concurrency=10, redelivery_timeout_s=30, max_deliveries=5, hooks=JobRowHooks())
    await worker.run(handle_signals=True)           # until SIGTERM, then a graceful stop

Operate: `await queue.stats()`, `await queue.dead_letters()`, `await queue.redrive("all")`,
`await queue.check_noeviction()`. Guarantees and the hook contract: `floodgate.jobs.worker`.
"""

from floodgate.jobs.backoff import backoff_ceiling, backoff_delay
from floodgate.jobs.entry import JobContext
from floodgate.jobs.hooks import JobHooks
from floodgate.jobs.keys import GROUP, QueueKeys, queue_keys
from floodgate.jobs.metrics import JobMetrics, job_metrics
from floodgate.jobs.queue import DeadLetter, JobQueue, QueueStats
from floodgate.jobs.tracing import current_traceparent
from floodgate.jobs.worker import Handler, UnknownJobType, Worker

__all__ = [
    "GROUP",
    "DeadLetter",
    "Handler",
    "JobContext",
    "JobHooks",
    "JobMetrics",
    "JobQueue",
    "QueueKeys",
    "QueueStats",
    "UnknownJobType",
    "Worker",
    "backoff_ceiling",
    "backoff_delay",
    "current_traceparent",
    "job_metrics",
    "queue_keys",
]
