"""HTTP routes for users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from floodgate.domain import caching
from floodgate.domain.users import service
from floodgate.domain.users.models import UserCreate, UserPublic, UserUpdate
from floodgate.web.deps import CacheDep, ReaderDep, SessionDep, SettingsDep, WriterDep
from floodgate.web.openapi import problem_responses, settings_maximum
from floodgate.web.pagination import MAX_PAGE, OffsetPage, offset_meta, resolve_page_size
from floodgate.web.responses import json_response
from floodgate.web.types import MAX_ID, CleanStr

router = APIRouter(prefix="/users", tags=["users"])

UserIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="user id")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses=problem_responses(409),
)
async def create_user(
    user_in: UserCreate,
    writer: WriterDep,
    cache: CacheDep,
    request: Request,
    response: Response,
) -> UserPublic:
    user = await service.create_user(writer=writer, user_in=user_in)
    await caching.user_written(cache, user_id=user.id, counted=True)
    response.headers["Location"] = request.url_for("get_user", user_id=user.id).path
    return user


@router.get("", response_model=OffsetPage[UserPublic])
async def list_users(
    reader: ReaderDep,
    cache: CacheDep,
    settings: SettingsDep,
    name: Annotated[
        CleanStr | None,
        Query(max_length=100, description="case-insensitive substring of the name"),
    ] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    per_page: Annotated[
        int | None, Query(ge=1, json_schema_extra=settings_maximum("max_page_size"))
    ] = None,
) -> Response:
    size = resolve_page_size(per_page, settings=settings, field="per_page")
    if name:
        # Filtered totals are not cached: a write could not name every filter it affects.
        total = await service.count_users(reader=reader, name=name)
    else:
        total = await caching.cached_total(
            cache, caching.users_total_key(), lambda: service.count_users(reader=reader, name=None)
        )
    items = await service.list_users(reader=reader, name=name, offset=(page - 1) * size, limit=size)
    return json_response(
        OffsetPage[UserPublic](items=items, meta=offset_meta(total=total, per_page=size, page=page))
    )


@router.get("/{user_id}", response_model=UserPublic)
async def get_user(user_id: UserIdPath, reader: ReaderDep) -> UserPublic:
    return await service.read_user(reader=reader, user_id=user_id)


@router.patch("/{user_id}", response_model=UserPublic, responses=problem_responses(409))
async def update_user(
    user_id: UserIdPath, user_in: UserUpdate, session: SessionDep, cache: CacheDep
) -> UserPublic:
    user = await service.update_user(session=session, user_id=user_id, user_in=user_in)
    await caching.user_written(cache, user_id=user_id, counted=False)
    return UserPublic.model_validate(user)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    description="Deletes the user and every message they wrote (the messages are then 404).",
)
async def delete_user(user_id: UserIdPath, session: SessionDep, cache: CacheDep) -> Response:
    message_ids = await service.delete_user(session=session, user_id=user_id)
    await caching.user_written(cache, user_id=user_id, counted=True, message_ids=message_ids)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
