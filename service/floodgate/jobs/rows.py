"""Job types and the hooks that keep job rows in step with the worker's deliveries.

`JobRows` claims the row before a handler runs (a finished job, or a duplicate entry of a running
one, is acknowledged without running), hands the handler a `JobRun` whose effects commit under the
run's fence, and records success, retry or death on the row before the worker moves the entry on
(the order the worker's hook contract requires: see `floodgate.jobs.worker`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from floodgate.jobs.entry import JobContext
from floodgate.jobs.hooks import JobHooks
from floodgate.jobs.store import Claim, Fenced, JobStore
from floodgate.jobs.worker import Handler

log = logging.getLogger(__name__)
Result = Mapping[str, Any] | None
_PROBLEM_TYPE = "https://floodgate.dev/problems/job-failed"
_CLAIM = "floodgate.rows.claim"  # keys of JobContext.state
_RESULT = "floodgate.rows.result"


@dataclass
class JobRun:
    """One run of a job, as its function sees it: the arguments, where an earlier run got to, and
    `effect()` for writes that must happen once."""

    ctx: JobContext
    claim: Claim
    store: JobStore
    finished: bool = field(default=False, init=False)

    @property
    def args(self) -> Mapping[str, Any]:
        return self.claim.args

    @property
    def progress_done(self) -> int:
        """Progress committed by earlier runs (resume from here: it committed with its effects)."""
        return self.claim.progress_done

    @asynccontextmanager
    async def effect(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits only if this run still owns the job (else `Fenced`)."""
        async with self.store.effect(self.claim) as conn:
            yield conn

    @property
    def partial(self) -> Mapping[str, Any] | None:
        """The tally earlier runs committed with their progress."""
        return self.claim.partial

    async def progress(
        self,
        conn: AsyncConnection,
        done: int,
        total: int | None = None,
        partial: Mapping[str, Any] | None = None,
    ) -> None:
        await self.store.progress(conn, self.claim, done, total, partial)

    async def finish(self, conn: AsyncConnection, result: Result) -> None:
        """Mark the job succeeded inside `effect()`, atomically with its last effects."""
        await self.store.succeed(self.claim, result, conn)
        self.finished = True


@dataclass(frozen=True)
class JobType:
    name: str
    run: Callable[[JobRun], Awaitable[Result]]
    queue: str = "default"


def problem(error: str, attempt: int) -> dict[str, Any]:
    return {
        "type": _PROBLEM_TYPE,
        "title": "The job failed",
        "detail": error[:2000],
        "attempt": attempt,
    }


def _job_id(ctx: JobContext) -> uuid.UUID | None:
    try:
        return uuid.UUID(ctx.job_id)
    except ValueError:
        return None


class JobRows(JobHooks):
    """The claim and the handler's result live in the delivery's own `ctx.state`: nothing is left
    behind by a delivery that ends any way at all (cancelled at the end of a grace period too)."""

    def __init__(self, store: JobStore, types: Mapping[str, JobType]) -> None:
        self._store = store
        self._types = dict(types)

    def handlers(self) -> dict[str, Handler]:
        return {name: self._handler(job_type) for name, job_type in self._types.items()}

    def _handler(self, job_type: JobType) -> Handler:
        async def handle(ctx: JobContext) -> None:
            claim: Claim | None = ctx.state.get(_CLAIM)
            if claim is None:  # on_start claimed nothing: never reached (it returned False)
                return
            run = JobRun(ctx, claim, self._store)
            try:
                result = await job_type.run(run)
            except Fenced:
                log.warning("job %s: run %d was taken over; it stops", ctx.job_id, claim.attempt)
                run.finished = True
                result = None
            ctx.state[_RESULT] = (run, result)

        return handle

    async def on_start(self, ctx: JobContext) -> bool | None:
        job_id = _job_id(ctx)
        if job_id is None:
            raise ValueError(f"entry {ctx.entry_id}: job id {ctx.job_id!r} is not a UUID")
        claim = await self._store.claim(job_id, ctx.entry_id)
        if claim is None:
            return False  # finished already, or running under another entry
        ctx.state[_CLAIM] = claim
        return None

    async def on_success(self, ctx: JobContext) -> None:
        claim: Claim | None = ctx.state.get(_CLAIM)
        run, result = ctx.state.get(_RESULT, (None, None))
        if claim is None or (run is not None and run.finished):
            return
        try:
            await self._store.succeed(claim, result)
        except Fenced:
            log.warning("job %s: run %d finished after a takeover", ctx.job_id, claim.attempt)

    async def on_retry(self, ctx: JobContext, delay_s: float, error: str) -> None:
        claim: Claim | None = ctx.state.get(_CLAIM)
        if claim is not None:
            await self._store.retrying(claim, problem(error, ctx.attempt), delay_s)

    async def on_dead(self, ctx: JobContext, error: str) -> None:
        job_id = _job_id(ctx)
        if job_id is not None:  # a malformed entry has no row to mark
            await self._store.dead(job_id, problem(error, ctx.attempt))
