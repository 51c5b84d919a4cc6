"""Callbacks through which the layer above (job rows in the database) follows each delivery.

Subclass `JobHooks` and override what you need; the contract (when each is awaited, and what a
raising hook does) is in `floodgate.jobs.worker`'s docstring.
"""

from __future__ import annotations

from floodgate.jobs.entry import JobContext


class JobHooks:
    """No-op hooks: the worker alone gives at-least-once delivery."""

    async def on_start(self, ctx: JobContext) -> bool | None:
        """Before the handler. Return False to skip it (the job already succeeded or is gone):
        the entry is then acknowledged without running."""
        return None

    async def on_success(self, ctx: JobContext) -> None:
        """After the handler returned, before the entry is acknowledged."""

    async def on_retry(self, ctx: JobContext, delay_s: float, error: str) -> None:
        """After a failed delivery, before the retry (due in `delay_s`) is scheduled."""

    async def on_dead(self, ctx: JobContext, error: str) -> None:
        """After the last allowed delivery failed, before the entry is dead-lettered."""
