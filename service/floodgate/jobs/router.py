"""`GET /api/v1/jobs/{id}` (where a 202 points) and `POST /api/v1/jobs/{id}:redrive` (a dead job
runs again)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status

from floodgate.errors import ConflictError, NotFoundError
from floodgate.jobs.records import JobPublic
from floodgate.jobs.submit import Submitter
from floodgate.web.openapi import problem_responses

router = APIRouter(prefix="/jobs", tags=["jobs"])
JobIdPath = Annotated[uuid.UUID, Path(description="job id (a UUIDv7)")]


async def _submitter(request: Request) -> Submitter:
    submitter: Submitter = request.app.state.jobs
    return submitter


SubmitterDep = Annotated[Submitter, Depends(_submitter)]


# `{job_id:uuid}`: the item path must not also match `/jobs/{id}:redrive` (a plain parameter
# takes the colon too, and `Allow` on the redrive path would then list GET).
@router.get("/{job_id:uuid}", response_model=JobPublic)
async def get_job(job_id: JobIdPath, jobs: SubmitterDep, response: Response) -> JobPublic:
    job = await jobs.store.get(job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist")
    # A job changes by itself: a client polls it, nothing may cache it.
    response.headers["Cache-Control"] = "no-store"
    return job


@router.post(
    "/{job_id:uuid}:redrive",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    responses=problem_responses(409),
)
async def redrive_job(
    job_id: JobIdPath, jobs: SubmitterDep, request: Request, response: Response
) -> JobPublic:
    job = await jobs.redrive(job_id)
    if job is None:
        if await jobs.store.get(job_id) is None:
            raise NotFoundError(f"job {job_id} does not exist")
        raise ConflictError(f"job {job_id} is not dead: only dead jobs are redriven")
    response.headers["Location"] = request.url_for("get_job", job_id=job_id).path
    return job
