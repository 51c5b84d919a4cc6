"""One consumer of the group: the Redis side of a worker (read, reclaim, renew, ack, retry, bury).

Retry and dead-letter each run as one Lua script that acks the entry and writes its successor
together, and only while the entry is still pending for this consumer (`lua/*.lua`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from floodgate.jobs.entry import JobEntry, text
from floodgate.jobs.queue import JobQueue

RENEW_BATCH: Final = 500  # ids per renewal script call

Fields = Mapping[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Delivery:
    entry_id: str
    entry: JobEntry
    times_delivered: int  # the group's delivery count of this entry, this delivery included


@dataclass(frozen=True, slots=True)
class Reclaimed:
    deliveries: list[Delivery] = field(default_factory=list)
    # Pending entries trimmed from the stream before anyone acked them (max_age_s too short).
    trimmed: list[str] = field(default_factory=list)


class AckBatcher:
    """Coalesces acks into one XACK per round trip: while one is on the wire, the acks of jobs
    finishing meanwhile gather for the next. A burst of finished jobs costs a few round trips and
    one connection instead of one each (the pool would run out at high concurrency)."""

    def __init__(self, send: Callable[[list[str]], Awaitable[object]]) -> None:
        self._send = send
        self._waiting: list[tuple[str, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def ack(self, entry_id: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((entry_id, future))
        if self._flusher is None:
            # Starts on the next loop iteration: the acks of this one join the first batch.
            self._flusher = asyncio.create_task(self._flush(), name="jobs-ack")
        await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await self._send([entry_id for entry_id, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():  # its job may have been cancelled meanwhile
                            future.set_result(None)
        finally:
            self._flusher = None


class StreamConsumer:
    def __init__(self, queue: JobQueue, name: str) -> None:
        self.queue = queue
        self.name = name
        self._keys = queue.keys
        self._scripts = queue.scripts
        self._reclaim_cursor = "0-0"
        self._acks = AckBatcher(self._ack_many)

    async def read(self, count: int, block_ms: int) -> list[Delivery]:
        """Up to `count` entries never delivered before (delivery count 1)."""
        reply = await self.queue.redis.xreadgroup(
            self._keys.group, self.name, {self._keys.stream: ">"}, count=count, block=block_ms
        )
        return [
            Delivery(text(entry_id), JobEntry.parse(fields), 1)
            for entry_id, fields in _stream_entries(reply)
        ]

    async def reclaim(self, min_idle_ms: int, count: int) -> Reclaimed:
        """Take over up to `count` entries idle for `min_idle_ms` (their consumer stopped renewing:
        it crashed, hung, or released them at shutdown), with their delivery counts.

        XAUTOCLAIM increments each entry's delivery count but does not return it; XPENDING of the
        claimed ids (one pipelined round trip, reclaims are rare) reads it back.
        """
        redis = self.queue.redis
        reply = await redis.xautoclaim(
            self._keys.stream,
            self._keys.group,
            self.name,
            min_idle_ms,
            start_id=self._reclaim_cursor,
            count=count,
        )
        # A cursor of 0-0 means the sweep reached the end of the pending list: start over next time.
        self._reclaim_cursor = text(reply[0])
        claimed: list[tuple[bytes, Fields]] = list(reply[1])
        trimmed = [text(entry_id) for entry_id in reply[2]] if len(reply) > 2 else []
        if not claimed:
            return Reclaimed(trimmed=trimmed)
        pipe = redis.pipeline(transaction=False)
        for entry_id, _fields in claimed:
            pipe.xpending_range(
                self._keys.stream,
                self._keys.group,
                min=entry_id,
                max=entry_id,
                count=1,
                consumername=self.name,
            )
        counts = await pipe.execute()
        deliveries = [
            Delivery(text(entry_id), JobEntry.parse(fields), int(found[0]["times_delivered"]))
            for (entry_id, fields), found in zip(claimed, counts, strict=True)
            if found  # gone from our pending list in between: no longer ours to run
        ]
        return Reclaimed(deliveries, trimmed)

    async def renew(self, entry_ids: Sequence[str]) -> list[str]:
        """Reset the idle time of these running entries; returns those no longer ours."""
        lost: list[str] = []
        for start in range(0, len(entry_ids), RENEW_BATCH):
            reply = await self._scripts.renew(
                keys=[self._keys.stream],
                args=[self._keys.group, self.name, *entry_ids[start : start + RENEW_BATCH]],
            )
            lost.extend(text(entry_id) for entry_id in reply)
        return lost

    async def ack(self, entry_id: str) -> None:
        await self._acks.ack(entry_id)

    async def _ack_many(self, entry_ids: list[str]) -> None:
        # The entries stay in the stream (trimmed by age later): deleting them breaks the lag.
        await self.queue.redis.xack(self._keys.stream, self._keys.group, *entry_ids)

    async def retry_later(self, delivery: Delivery, deliveries: int, delay_s: float) -> bool:
        """Ack the entry and schedule a successor that carries `deliveries` as its attempt."""
        entry = delivery.entry
        due_ms = int((self.queue.clock() + delay_s) * 1000)
        successor = JobEntry(entry.job_id, entry.job_type, deliveries, due_ms, entry.traceparent)
        done = await self._scripts.retry(
            keys=[self._keys.stream, self._keys.delayed],
            args=[self._keys.group, delivery.entry_id, self.name, due_ms, successor.member()],
        )
        return bool(done)

    async def dead_letter(self, delivery: Delivery, deliveries: int, error: str) -> bool:
        """Ack the entry and append it, with the error, to the dead-letter stream."""
        entry = delivery.entry
        now = self.queue.clock()
        fields = JobEntry(
            entry.job_id, entry.job_type, deliveries, entry.enqueued_at_ms, entry.traceparent
        ).fields()
        fields.update(error=error, failed_at=str(int(now * 1000)), entry=delivery.entry_id)
        flat = [part for pair in fields.items() for part in pair]
        done = await self._scripts.dead_letter(
            keys=[self._keys.stream, self._keys.dead],
            args=[
                self._keys.group,
                delivery.entry_id,
                self.name,
                self.queue.dead_minid(now),
                *flat,
            ],
        )
        return bool(done)

    async def leave(self) -> bool:
        """Delete this consumer from the group unless it still holds pending entries."""
        done = await self._scripts.leave(
            keys=[self._keys.stream], args=[self._keys.group, self.name]
        )
        return bool(done)


def _stream_entries(reply: Any) -> list[tuple[bytes, Fields]]:
    """XREADGROUP's entries of our one stream, from a RESP2 list or a RESP3 map reply."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        return list(streams[0][0]) if streams and streams[0] else []
    return list(reply[0][1])
