"""Job rows: conditional transitions that make each job's effects happen once.

Delivery is at least once (a crashed worker's entry is delivered again, a lost entry is re-added).
The effect is exactly once because every run first *claims* the row — `attempts` goes up by one and
becomes the run's fence — and then writes its effects only inside `effect()`, a transaction that
starts by locking the row *on that fence*. A second delivery of the same job either finds it
finished (and does nothing) or takes the run over with a higher fence, after which the first run's
next `effect()` fails with `Fenced` and its writes roll back. Effects outside the database (an HTTP
call) cannot be fenced: they are at least once and carry the job id for the receiver to dedupe.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from floodgate.db.columns import utcnow
from floodgate.jobs.ids import uuid7
from floodgate.jobs.records import Job, JobPublic

_jobs: Table = Job.__table__  # type: ignore[attr-defined]
_CLAIMABLE = ("queued", "retrying")


class Fenced(Exception):
    """This run no longer owns its job: another delivery took it over, or it is finished."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What a run owns: the job, its arguments, where it got to, and its fence."""

    job_id: uuid.UUID
    type: str
    args: Mapping[str, Any]
    attempt: int
    progress_done: int
    entry_id: str
    # What earlier runs recorded with their progress (a running tally), or None.
    partial: Mapping[str, Any] | None = None


class JobStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self, *, queue: str, type: str, args: Mapping[str, Any], total: int | None = None
    ) -> JobPublic:
        now = utcnow()
        values = {
            "id": uuid7(),
            "queue": queue,
            "type": type,
            "status": "queued",
            "args": dict(args),
            "attempts": 0,
            "progress_done": 0,
            "progress_total": total,
            "created_at": now,
            "updated_at": now,
        }
        async with self._engine.begin() as conn:
            row = (await conn.execute(insert(_jobs).returning(*_jobs.c), values)).one()
        return JobPublic.of(row)

    async def get(self, job_id: uuid.UUID) -> JobPublic | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(_jobs).where(_jobs.c.id == job_id))).first()
        return None if row is None else JobPublic.of(row)

    async def queue_of(self, job_id: uuid.UUID) -> str:
        async with self._engine.connect() as conn:
            queue = (await conn.execute(select(_jobs.c.queue).where(_jobs.c.id == job_id))).scalar()
        if queue is None:
            raise KeyError(job_id)
        return str(queue)

    async def claim(self, job_id: uuid.UUID, entry_id: str) -> Claim | None:
        """Start a run for this delivery; None when there is nothing to run (finished, or running
        under another entry: a duplicate)."""
        now = utcnow()
        statement = (
            update(_jobs)
            .where(
                _jobs.c.id == job_id,
                or_(
                    _jobs.c.status.in_(_CLAIMABLE),
                    and_(_jobs.c.status == "running", _jobs.c.entry_id == entry_id),
                ),
            )
            .values(
                status="running",
                attempts=_jobs.c.attempts + 1,
                entry_id=entry_id,
                started_at=now,
                updated_at=now,
                next_attempt_at=None,
            )
            .returning(
                _jobs.c.type, _jobs.c.args, _jobs.c.attempts, _jobs.c.progress_done, _jobs.c.result
            )
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            return None
        return Claim(
            job_id, row.type, row.args, row.attempts, row.progress_done, entry_id, row.result
        )

    @asynccontextmanager
    async def effect(self, claim: Claim) -> AsyncIterator[AsyncConnection]:
        """A transaction for the run's effects, holding the row locked on the run's fence (so a
        takeover waits for it, and a taken-over run raises `Fenced` before writing anything)."""
        async with self._engine.begin() as conn:
            await self._fence(conn, claim, updated_at=utcnow())
            yield conn

    async def progress(
        self,
        conn: AsyncConnection,
        claim: Claim,
        done: int,
        total: int | None = None,
        partial: Mapping[str, Any] | None = None,
    ) -> None:
        """Record progress inside `effect()`: it commits with the effects it counts. `partial` is
        a tally the next run resumes from (`Claim.partial`), shown as the result meanwhile."""
        values: dict[str, Any] = {"progress_done": done, "updated_at": utcnow()}
        if total is not None:
            values["progress_total"] = total
        if partial is not None:
            values["result"] = dict(partial)
        await self._fence(conn, claim, **values)

    async def succeed(
        self, claim: Claim, result: Mapping[str, Any] | None, conn: AsyncConnection | None = None
    ) -> None:
        """Finish the run; inside `effect()` pass its connection so the status commits with the
        effects."""
        now = utcnow()
        values = {"status": "succeeded", "result": result, "error": None}
        if conn is not None:
            await self._fence(conn, claim, finished_at=now, updated_at=now, **values)
            return
        async with self._engine.begin() as own:
            await self._fence(own, claim, finished_at=now, updated_at=now, **values)

    async def retrying(self, claim: Claim, problem: Mapping[str, Any], delay_s: float) -> bool:
        """The run failed and will be tried again; False if it had lost the job already."""
        now = utcnow()
        values = {
            "status": "retrying",
            "error": dict(problem),
            "updated_at": now,
            "next_attempt_at": now + timedelta(seconds=delay_s),
        }
        return await self._transition(claim, values)

    async def dead(self, job_id: uuid.UUID, problem: Mapping[str, Any]) -> bool:
        """Out of deliveries (or not runnable at all): the job is dead-lettered."""
        now = utcnow()
        statement = (
            update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.status.not_in(("succeeded", "dead")))
            .values(status="dead", error=dict(problem), finished_at=now, updated_at=now)
        )
        async with self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def revive(self, job_id: uuid.UUID) -> bool:
        """A dead job goes back to `queued` with its attempts reset (the redrive)."""
        statement = (
            update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.status == "dead")
            .values(status="queued", attempts=0, entry_id=None, finished_at=None,
                    updated_at=utcnow())
        )  # fmt: skip
        async with self._engine.begin() as conn:
            return (await conn.execute(statement)).rowcount == 1

    async def stale_queued(
        self, older_than_s: float, limit: int = 500
    ) -> list[tuple[uuid.UUID, str, str]]:
        """`queued` rows untouched for `older_than_s` (their entry may have been lost in a Redis
        failover): (id, queue, type) each, marked touched so a row is re-added at most once per
        period whatever the queue's depth. A re-added duplicate is harmless: `claim` runs the job
        once."""
        cutoff: datetime = utcnow() - timedelta(seconds=older_than_s)
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(_jobs.c.id, _jobs.c.queue, _jobs.c.type)
                    .where(_jobs.c.status == "queued", _jobs.c.updated_at < cutoff)
                    .order_by(_jobs.c.updated_at)
                    .limit(limit)
                )
            ).all()
            if rows:
                await conn.execute(
                    update(_jobs)
                    .where(_jobs.c.id.in_([r.id for r in rows]), _jobs.c.status == "queued")
                    .values(updated_at=utcnow())
                )
        return [(r.id, r.queue, r.type) for r in rows]

    async def _transition(self, claim: Claim, values: Mapping[str, Any]) -> bool:
        async with self._engine.begin() as conn:
            try:
                await self._fence(conn, claim, **values)
            except Fenced:
                return False
        return True

    @staticmethod
    async def _fence(conn: AsyncConnection, claim: Claim, **values: Any) -> None:
        statement = (
            update(_jobs)
            .where(
                _jobs.c.id == claim.job_id,
                _jobs.c.attempts == claim.attempt,
                _jobs.c.status == "running",
            )
            .values(**values)
        )
        if (await conn.execute(statement)).rowcount != 1:
            raise Fenced(f"job {claim.job_id} attempt {claim.attempt} no longer owns the job")
