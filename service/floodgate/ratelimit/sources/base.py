"""What every policy source shares: the sink and source protocols, and stopping a watcher task.

A source hands validated `RateLimitPolicy` objects to a `PolicySink` (the `RateLimiter`), which
compiles them into a new `PolicySet` and swaps it in atomically; requests in flight finish on the
set they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

from floodgate.ratelimit.model import RateLimitPolicy


class PolicySink(Protocol):
    """What a source feeds (implemented by `RateLimiter`)."""

    def apply_policies(
        self,
        policies: Sequence[RateLimitPolicy],
        *,
        origin: str,
        generation: int | None = None,
    ) -> object:
        """Compile and swap in `policies`; raises ValueError if they do not compile together."""
        ...

    def report_invalid(self, errors: Sequence[str], *, origin: str) -> None:
        """Record that `origin` offered an invalid policy set (the applied one is kept)."""
        ...


class PolicySource(Protocol):
    """A supplier of policy sets: a file (`sources.file`) or the operator's feed (`sources.redis`).

    `start` applies the initial policies before returning (raising if there are none valid to start
    with) and then keeps `sink` up to date from a background task; `close` stops that task.
    """

    async def start(self, sink: PolicySink) -> None: ...

    async def close(self) -> None: ...


class StaticPolicySource:
    """A fixed list of policies (tests, or an app that builds its policies in code)."""

    def __init__(self, policies: Sequence[RateLimitPolicy], origin: str = "static") -> None:
        self.policies = list(policies)
        self.origin = origin

    async def start(self, sink: PolicySink) -> None:
        sink.apply_policies(self.policies, origin=self.origin)

    async def close(self) -> None:
        return None


class WatchingSource:
    """Base of the sources whose `start` leaves `_task` keeping the sink up to date."""

    _task: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Cancel the watcher task and wait until it has finished."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
