"""Group commit: callers that arrive while a flush is running share the next one.

Each `submit(item)` returns once a flush that included `item` has finished (or raises what that
flush raised). A lone caller pays one flush, as before; under load the cost is one flush per batch.
Flushes run in their own task, one at a time, so a caller that is cancelled while waiting does not
cancel the flush the other callers are waiting for, and its item is still flushed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[None]], name: str) -> None:
        self._flush = flush
        self._name = name
        self._queued: list[T] = []
        self._queued_done: asyncio.Future[None] | None = None
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        if self._queued_done is None:
            self._queued_done = asyncio.get_running_loop().create_future()
            self._queued_done.add_done_callback(consume_exception)
        done = self._queued_done
        self._queued.append(item)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name=self._name)
        await asyncio.shield(done)

    async def _run(self) -> None:
        while self._queued:
            batch, done = self._queued, self._queued_done
            self._queued, self._queued_done = [], None
            assert done is not None
            try:
                await self._flush(batch)
            except asyncio.CancelledError:
                done.cancel()
                if self._queued_done is not None:
                    self._queued_done.cancel()
                raise
            except Exception as exc:  # the callers of this batch see it; the next batch still runs
                done.set_exception(exc)
            else:
                done.set_result(None)

    async def drain(self) -> None:
        """Wait until everything submitted so far has been flushed (errors are the callers')."""
        while self._runner is not None and not self._runner.done():
            await asyncio.gather(self._runner, return_exceptions=True)


def consume_exception(future: asyncio.Future[Any]) -> None:
    """Done callback: a future nobody awaits must not log "exception never retrieved"."""
    if not future.cancelled():
        future.exception()
