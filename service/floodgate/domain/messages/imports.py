"""Bulk import of messages as a job: `POST /api/v1/messages:import` answers 202 at once, a worker
inserts the items in batches.

Each batch commits together with the job's progress, under the run's fence (`JobRun.effect`): a
run that crashed or was taken over resumes after the last committed batch, so no item is ever
inserted twice. Items whose user no longer exists when their batch runs are skipped and counted.
Totals shown by the list endpoints may lag an import by up to `caching.TOTAL_TTL_S` when the
worker is another process (its writes do not go through the API's cache).
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field
from sqlalchemy import Table, insert, select
from sqlmodel import SQLModel

from floodgate.db.columns import utcnow
from floodgate.domain.messages.models import Message, MessageCreate
from floodgate.domain.users.models import User
from floodgate.jobs.rows import JobRun, JobType

JOB_TYPE = "messages.import"
MAX_ITEMS = 10_000
BATCH = 500
_messages: Table = Message.__table__  # type: ignore[attr-defined]
_users: Table = User.__table__  # type: ignore[attr-defined]


class MessageImport(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    items: list[MessageCreate] = Field(min_length=1, max_length=MAX_ITEMS)


def job_args(body: MessageImport) -> dict[str, Any]:
    return {"items": [[item.user_id, item.body] for item in body.items]}


async def run_import(run: JobRun) -> dict[str, Any] | None:
    items: list[list[Any]] = list(run.args["items"])
    tally = dict(run.partial or {"imported": 0, "skipped_unknown_user": 0})
    done = run.progress_done
    while done < len(items):
        batch = items[done : done + BATCH]
        async with run.effect() as conn:
            wanted = {int(user_id) for user_id, _ in batch}
            known = set(
                (await conn.execute(select(_users.c.id).where(_users.c.id.in_(wanted)))).scalars()
            )
            now = utcnow()
            rows = [
                {"user_id": int(u), "body": b, "created_at": now, "updated_at": now}
                for u, b in batch
                if int(u) in known
            ]
            if rows:
                await conn.execute(insert(_messages), rows)
            tally["imported"] += len(rows)
            tally["skipped_unknown_user"] += len(batch) - len(rows)
            done += len(batch)
            if done < len(items):
                await run.progress(conn, done, partial=tally)
            else:
                await run.progress(conn, done)
                await run.finish(conn, tally)
    return tally


IMPORT_JOB = JobType(JOB_TYPE, run_import)
