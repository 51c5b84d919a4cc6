"""GroupCommit: arrivals during a flush share the next one; one at a time; errors to callers."""

from __future__ import annotations

import asyncio

import pytest

from floodgate.cache.group_commit import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.running = 0
        self.fail_on: set[int] = set()

    async def flush(self, batch: list[int]) -> None:
        self.running += 1
        assert self.running == 1, "flushes overlap"
        try:
            await self.gate.wait()
            self.batches.append(batch)
            if self.fail_on & set(batch):
                raise RuntimeError(f"failed {batch}")
        finally:
            self.running -= 1


async def _held(rec: Recorder, item: int) -> tuple[GroupCommit[int], asyncio.Task[None]]:
    """A GroupCommit whose first flush (of `item`) is running, held at the recorder's gate."""
    commit = GroupCommit(rec.flush, "t")
    rec.gate.clear()
    first = asyncio.create_task(commit.submit(item))
    await asyncio.sleep(0.01)
    return commit, first


async def test_a_lone_caller_gets_its_own_flush() -> None:
    rec = Recorder()
    commit = GroupCommit(rec.flush, "t")
    await commit.submit(1)
    await commit.submit(2)
    assert rec.batches == [[1], [2]]


async def test_arrivals_during_a_flush_share_the_next_one() -> None:
    rec = Recorder()
    commit, first = await _held(rec, 0)
    rest = [asyncio.create_task(commit.submit(i)) for i in range(1, 51)]
    await asyncio.sleep(0.01)
    assert not any(t.done() for t in [first, *rest])
    rec.gate.set()
    await asyncio.gather(first, *rest)
    assert rec.batches == [[0], list(range(1, 51))]


async def test_a_failed_flush_fails_its_callers_only() -> None:
    rec = Recorder()
    rec.fail_on = {1}
    commit, first = await _held(rec, 1)
    second = asyncio.create_task(commit.submit(2))
    rec.gate.set()
    with pytest.raises(RuntimeError, match=r"failed \[1\]"):
        await first
    await second
    assert rec.batches == [[1], [2]]


async def test_a_cancelled_caller_does_not_cancel_the_flush_and_its_item_is_flushed() -> None:
    rec = Recorder()
    commit = GroupCommit(rec.flush, "t")
    rec.gate.clear()
    first = asyncio.create_task(commit.submit(1))
    second = asyncio.create_task(commit.submit(2))
    await asyncio.sleep(0.01)
    first.cancel()
    queued = asyncio.create_task(commit.submit(3))
    await asyncio.sleep(0.01)
    queued.cancel()  # gone before its batch even started
    rec.gate.set()
    await second
    await commit.drain()
    assert first.cancelled()
    assert queued.cancelled()
    assert rec.batches == [[1, 2], [3]]
