"""Bare FastAPI hello: the framework's own cost, the reference every target is compared with."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"message": "hello"}
