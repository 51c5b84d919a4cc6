"""Submitting a job from a request: the row is committed first, then the stream entry is added.

A client that got 202 has a job that cannot be lost: if the entry cannot be added (Redis down, a
failover that drops the XADD), the row stays `queued` and the reconciler adds it later. The
request's trace travels in the entry as a W3C `traceparent` (the queue's PRODUCER span).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from floodgate.jobs.records import JobPublic
from floodgate.jobs.store import JobStore

log = logging.getLogger(__name__)


class Enqueuer(Protocol):
    """What submitting needs of a queue (the Redis stream or the in-process development one)."""

    async def enqueue(
        self,
        job_id: str,
        job_type: str,
        *,
        attempt: int = 0,
        traceparent: str | None = None,
        delay_s: float = 0,
    ) -> str: ...


class Submitter:
    def __init__(self, store: JobStore, queues: Mapping[str, Enqueuer]) -> None:
        self._store = store
        self._queues = queues

    @property
    def store(self) -> JobStore:
        return self._store

    async def submit(
        self,
        job_type: str,
        args: Mapping[str, Any],
        *,
        queue: str = "default",
        total: int | None = None,
    ) -> JobPublic:
        enqueuer = self._queues[queue]  # a KeyError here is a programming error, not input
        job = await self._store.create(queue=queue, type=job_type, args=args, total=total)
        await self.add_entry(enqueuer, job.id, job_type, queue)
        return job

    async def add_entry(
        self, enqueuer: Enqueuer, job_id: uuid.UUID, job_type: str, queue: str
    ) -> bool:
        try:  # the queue sends the request's trace along (a PRODUCER span when sampled)
            await enqueuer.enqueue(str(job_id), job_type)
        except Exception:  # the row is committed: the reconciler adds the entry later
            log.warning(
                "job %s committed but its queue entry was not added; the reconciler will",
                job_id,
                exc_info=True,
            )
            return False
        return True

    async def redrive(self, job_id: uuid.UUID) -> JobPublic | None:
        """A dead job runs again from its first attempt; None if it is not dead."""
        if not await self._store.revive(job_id):
            return None
        job = await self._store.get(job_id)
        assert job is not None
        queue = await self._store.queue_of(job_id)
        await self.add_entry(self._queues[queue], job_id, job.type, queue)
        return job
