"""HTTP routes for messages: CRUD, offset pages, and keyset cursor pages for deep reads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from floodgate.domain import caching
from floodgate.domain.messages import imports, service
from floodgate.domain.messages.models import MessageCreate, MessagePublic, MessageUpdate
from floodgate.jobs.records import JobPublic
from floodgate.jobs.router import SubmitterDep
from floodgate.web.deps import (
    CacheDep,
    CursorCodecDep,
    ReaderDep,
    SessionDep,
    SettingsDep,
    WriterDep,
)
from floodgate.web.openapi import settings_maximum
from floodgate.web.pagination import (
    MAX_PAGE,
    CursorMeta,
    CursorPage,
    InvalidCursor,
    OffsetPage,
    offset_meta,
    resolve_page_size,
)
from floodgate.web.problems import InvalidParameter
from floodgate.web.responses import json_response
from floodgate.web.types import MAX_ID

router = APIRouter(prefix="/messages", tags=["messages"])

# The cap is FLOODGATE_MAX_PAGE_SIZE (resolve_page_size enforces it): the document states it.
_PAGE_SIZE_MAXIMUM = settings_maximum("max_page_size")
MessageIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="message id")]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MessagePublic)
async def create_message(
    message_in: MessageCreate,
    writer: WriterDep,
    cache: CacheDep,
    request: Request,
    response: Response,
) -> MessagePublic:
    message = await service.create_message(writer=writer, message_in=message_in)
    await caching.message_written(cache, user_id=message.user_id, counted=True)
    response.headers["Location"] = request.url_for("get_message", message_id=message.id).path
    return message


@router.post(
    ":import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobPublic,
    description=(
        f"Up to {imports.MAX_ITEMS} messages, inserted by a worker in batches of {imports.BATCH}; "
        "the 202's `Location` is the job to poll (`GET /api/v1/jobs/{id}`)."
    ),
)
async def import_messages(
    body: imports.MessageImport, jobs: SubmitterDep, request: Request, response: Response
) -> JobPublic:
    job = await jobs.submit(imports.JOB_TYPE, imports.job_args(body), total=len(body.items))
    response.headers["Location"] = request.url_for("get_job", job_id=job.id).path
    return job


@router.get(
    "",
    response_model=OffsetPage[MessagePublic] | CursorPage[MessagePublic],
    description=(
        "Offset pages with `page`/`per_page` (`meta.total/pages/current`), or keyset pages with "
        "`limit` and the opaque `cursor` from `meta.next_cursor` (constant cost at any depth; "
        "the next page is also in the `Link` header)."
    ),
)
async def list_messages(
    request: Request,
    reader: ReaderDep,
    cache: CacheDep,
    settings: SettingsDep,
    codec: CursorCodecDep,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    page: Annotated[int | None, Query(ge=1, le=MAX_PAGE)] = None,
    per_page: Annotated[int | None, Query(ge=1, json_schema_extra=_PAGE_SIZE_MAXIMUM)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int | None, Query(ge=1, json_schema_extra=_PAGE_SIZE_MAXIMUM)] = None,
) -> Response:
    keyset = cursor is not None or limit is not None
    if keyset and (page is not None or per_page is not None):
        raise InvalidParameter(
            ["query", "cursor" if cursor is not None else "limit"],
            "use either page/per_page (offset) or cursor/limit (keyset), not both",
        )
    if keyset:
        return await _keyset_page(request, reader, settings, codec, user_id, cursor, limit)
    size = resolve_page_size(per_page, settings=settings, field="per_page")
    current = page or 1
    total = await caching.cached_total(
        cache,
        caching.messages_total_key(user_id),
        lambda: service.count_messages(reader=reader, user_id=user_id),
    )
    items = await service.list_messages_offset(
        reader=reader, user_id=user_id, offset=(current - 1) * size, limit=size
    )
    return json_response(
        OffsetPage[MessagePublic](
            items=items, meta=offset_meta(total=total, per_page=size, page=current)
        )
    )


async def _keyset_page(
    request: Request,
    reader: ReaderDep,
    settings: SettingsDep,
    codec: CursorCodecDep,
    user_id: int | None,
    cursor: str | None,
    limit: int | None,
) -> Response:
    size = resolve_page_size(limit, settings=settings, field="limit")
    scope = f"u={user_id or ''}"
    try:
        after = codec.decode(cursor, scope=scope) if cursor else None
    except InvalidCursor as exc:
        raise InvalidParameter(["query", "cursor"], str(exc)) from exc
    # One row more than asked tells whether a next page exists without a COUNT.
    rows = await service.list_messages_after(
        reader=reader, user_id=user_id, after=after, limit=size + 1
    )
    items = rows[:size]
    next_cursor = None
    headers: dict[str, str] = {}
    if len(rows) > size:
        last = items[-1]
        next_cursor = codec.encode(after=(last.created_at, last.id), scope=scope)
        # A relative reference (RFC 8288 allows it) stays right behind any proxy or host name.
        next_url = request.url.include_query_params(cursor=next_cursor, limit=size)
        headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    page = CursorPage[MessagePublic](
        items=items, meta=CursorMeta(next_cursor=next_cursor, limit=size)
    )
    return json_response(page, headers)


@router.get("/{message_id}", response_model=MessagePublic)
async def get_message(message_id: MessageIdPath, reader: ReaderDep) -> MessagePublic:
    return await service.read_message(reader=reader, message_id=message_id)


@router.patch("/{message_id}", response_model=MessagePublic)
async def update_message(
    message_id: MessageIdPath, message_in: MessageUpdate, session: SessionDep, cache: CacheDep
) -> MessagePublic:
    message = await service.update_message(
        session=session, message_id=message_id, message_in=message_in
    )
    await caching.message_written(
        cache, user_id=message.user_id, message_ids=[message_id], counted=False
    )
    return MessagePublic.model_validate(message)


@router.delete("/{message_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_message(
    message_id: MessageIdPath, session: SessionDep, cache: CacheDep
) -> Response:
    user_id = await service.delete_message(session=session, message_id=message_id)
    await caching.message_written(cache, user_id=user_id, message_ids=[message_id], counted=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
