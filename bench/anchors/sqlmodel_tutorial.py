"""The SQLModel tutorial pattern: sync engine on SQLite, a session per request, get by id.

Same shape as the tutorial's "read one hero" (`with Session(engine)` in a sync path operation,
`session.get`, 404 if missing, a `...Public` response model), reading the benchmark's seeded
`messages` table (path in BENCH_SQLITE_PATH).

Not the later chapter's `SessionDep` (a sync `yield` dependency): under 64 concurrent connections
that variant stalled here for whole rounds (0 responses in 2 s, then fine again) — most likely
threadpool threads waiting in endpoints for a pooled connection while the sessions that hold the
connections wait for a free thread to run their dependency's exit — which is no useful reference.
"""

from __future__ import annotations

import os
from datetime import datetime

from fastapi import FastAPI, HTTPException
from sqlmodel import Field, Session, SQLModel, create_engine


class MessageBase(SQLModel):
    body: str


class Message(MessageBase, table=True):
    __tablename__ = "messages"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int
    created_at: datetime
    updated_at: datetime


class MessagePublic(MessageBase):
    id: int
    user_id: int
    created_at: datetime
    updated_at: datetime


engine = create_engine(
    f"sqlite:///{os.environ['BENCH_SQLITE_PATH']}", connect_args={"check_same_thread": False}
)

app = FastAPI()


@app.get("/messages/{message_id}", response_model=MessagePublic)
def read_message(message_id: int) -> Message:
    with Session(engine) as session:
        message = session.get(Message, message_id)
        if not message:
            raise HTTPException(status_code=404, detail="Message not found")
        return message
