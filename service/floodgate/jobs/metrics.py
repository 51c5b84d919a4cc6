"""Prometheus metrics of the job queue and its workers, created on first use per registry.

Queue gauges (`floodgate_queue_*{queue}`) are samples of the shared stream: every worker publishes
the same values, so dashboards aggregate them with `max by (queue)`, never `sum`.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from floodgate.jobs.queue import QueueStats

INF: Final = float("inf")
# Jobs run from milliseconds (a webhook) to minutes (a 10,000-row import).
DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    INF,
)  # fmt: skip
WAIT_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, INF,
)  # fmt: skip
OUTCOMES: Final = ("succeeded", "retried", "dead")


@dataclass(frozen=True, slots=True)
class TypeSeries:
    """The children of one job type, bound once."""

    succeeded: Counter
    retried: Counter
    dead: Counter
    duration: Histogram
    queue_wait: Histogram


class JobMetrics:
    """The queue and job families of one registry; see `job_metrics`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

        def gauge(name: str, documentation: str) -> Gauge:
            return Gauge(
                name, documentation, ["queue"], registry=registry, multiprocess_mode="livemax"
            )

        self.lag = gauge(
            "floodgate_queue_lag",
            "Entries of the queue's stream not yet delivered to any worker (XINFO GROUPS lag).",
        )
        self.pending = gauge(
            "floodgate_queue_pending",
            "Entries delivered to a worker and not yet acknowledged (running, or abandoned by a "
            "crashed worker until reclaimed).",
        )
        self.oldest_age = gauge(
            "floodgate_queue_oldest_age_seconds",
            "Age of the oldest entry that is pending or still undelivered.",
        )
        self.dead_letter = gauge(
            "floodgate_queue_dead_letter", "Entries in the queue's dead-letter stream."
        )
        self.completed = Counter(
            "floodgate_jobs_completed",
            "Job deliveries by how they ended: succeeded, retried (failed, retry scheduled) or "
            "dead (failed for the last time, dead-lettered).",
            ["type", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "floodgate_job_duration_seconds",
            "Time a handler ran, whatever the outcome.",
            ["type"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "floodgate_job_queue_wait_seconds",
            "Time from an entry becoming runnable (enqueued, or its retry due) to its first start.",
            ["type"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.redeliveries = Counter(
            "floodgate_job_redeliveries",
            "Entries reclaimed from a consumer that stopped renewing them (crashed or released "
            "at shutdown) and delivered again.",
            ["queue"],
            registry=registry,
        )
        self._types: dict[str, TypeSeries] = {}

    def for_type(self, job_type: str) -> TypeSeries:
        series = self._types.get(job_type)
        if series is None:
            series = self._types[job_type] = TypeSeries(
                succeeded=self.completed.labels(job_type, "succeeded"),
                retried=self.completed.labels(job_type, "retried"),
                dead=self.completed.labels(job_type, "dead"),
                duration=self.duration.labels(job_type),
                queue_wait=self.queue_wait.labels(job_type),
            )
        return series

    def publish(self, stats: QueueStats) -> None:
        self.lag.labels(stats.queue).set(stats.lag)
        self.pending.labels(stats.queue).set(stats.pending)
        self.oldest_age.labels(stats.queue).set(stats.oldest_age_s)
        self.dead_letter.labels(stats.queue).set(stats.dead_letters)


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, JobMetrics] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def job_metrics(registry: CollectorRegistry | None = None) -> JobMetrics:
    """The metrics registered in `registry` (default: the global one), created on first use and
    shared by every queue and worker of the process."""
    target = REGISTRY if registry is None else registry
    with _lock:
        found = _by_registry.get(target)
        if found is None:
            found = _by_registry[target] = JobMetrics(target)
        return found
