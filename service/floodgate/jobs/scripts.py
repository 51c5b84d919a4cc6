"""The queue's Lua scripts (`lua/*.lua`, shipped in the package), read once per process.

They go through redis-py's `register_script`: a NOSCRIPT reply (SCRIPT FLUSH, Redis restart,
fail-over) reloads the script and retries transparently.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from functools import cache

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript


@cache
def lua_source(name: str) -> str:
    return (
        importlib.resources.files("floodgate.jobs")
        .joinpath("lua", f"{name}.lua")
        .read_text(encoding="utf-8")
    )


@dataclass(frozen=True, slots=True)
class QueueScripts:
    promote_due: AsyncScript
    retry: AsyncScript
    dead_letter: AsyncScript
    renew: AsyncScript
    redrive: AsyncScript
    leave: AsyncScript


def register_scripts(client: aioredis.Redis) -> QueueScripts:
    """Script objects bound to `client` (hashes computed locally: no I/O)."""
    return QueueScripts(
        **{
            name: client.register_script(lua_source(name))
            for name in ("promote_due", "retry", "dead_letter", "renew", "redrive", "leave")
        }
    )
