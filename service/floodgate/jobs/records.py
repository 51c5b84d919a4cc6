"""The job row: the durable truth about a job. The stream entry only says "run this id now".

A row is committed before its entry is added, so a job the client was told about (202) can never
be lost by Redis; the reconciler re-adds entries for rows still `queued` after a while.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import JSON, CheckConstraint, Column, Index, String, Uuid
from sqlmodel import Field, SQLModel

from floodgate.db.columns import UTCDateTime, utcnow

JobStatus = Literal["queued", "running", "retrying", "succeeded", "dead"]
STATUSES: tuple[JobStatus, ...] = ("queued", "running", "retrying", "succeeded", "dead")
FINAL: frozenset[str] = frozenset({"succeeded", "dead"})


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'retrying', 'succeeded', 'dead')",
            name="ck_jobs_status",
        ),
        # The reconciler's scan: old rows in one status.
        Index("ix_jobs_status_updated_at", "status", "updated_at"),
    )

    id: uuid.UUID = Field(sa_column=Column(Uuid(), primary_key=True))
    queue: str = Field(sa_column=Column(String(64), nullable=False))
    type: str = Field(sa_column=Column(String(64), nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    args: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Deliveries that started running (crash redeliveries included). Also the fence of a run: a
    # run may write its effects only while the row still carries the attempt it claimed.
    attempts: int = Field(default=0, nullable=False)
    progress_done: int = Field(default=0, nullable=False)
    progress_total: int | None = Field(default=None)
    result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The stream entry that owns the current run: its redelivery may take the run over, a duplicate
    # entry of a running job may not.
    entry_id: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Progress(BaseModel):
    done: int
    total: int | None


class JobPublic(BaseModel):
    """`GET /api/v1/jobs/{id}`."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: str
    status: JobStatus
    progress: Progress
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    next_attempt_at: datetime | None
    result: dict[str, Any] | None
    problem: dict[str, Any] | None

    @classmethod
    def of(cls, row: Any) -> JobPublic:
        """From a `Job` or a Core row of the jobs table."""
        return cls(
            id=row.id,
            type=row.type,
            status=row.status,
            progress=Progress(done=row.progress_done, total=row.progress_total),
            attempts=row.attempts,
            created_at=row.created_at,
            updated_at=row.updated_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            next_attempt_at=row.next_attempt_at,
            result=row.result,
            problem=row.error,
        )
