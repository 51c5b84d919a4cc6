"""The producer and operator side of a job queue: enqueue (now or delayed), stats, dead letters.

A queue is one Redis Stream read by the consumer group `floodgate-workers`, a delayed-entry ZSET
and a dead-letter stream (`keys.py`). It must live in the *shared* Redis, which must run
`maxmemory-policy noeviction`: an evicting Redis drops queue keys silently (`check_noeviction`).

The stream is trimmed by age (`MINID ~ now - max_age_s` on every XADD), never by deleting entries
one by one: an XDEL leaves a tombstone that makes the group's `lag` (what KEDA scales on)
unknowable. An entry older than `max_age_s` is gone even if it never ran, so `max_age_s` must be far
longer than any backlog; the job rows in the database remain the record a reconciler re-enqueues
from. Times are the clients' clocks (NTP-close; a skew shifts trimming and delays by that much).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import redis.asyncio as aioredis
from opentelemetry import trace
from redis.exceptions import ResponseError

from floodgate.jobs.entry import JobEntry, entry_id_ms, text
from floodgate.jobs.keys import QueueKeys, queue_keys
from floodgate.jobs.scripts import QueueScripts, register_scripts
from floodgate.jobs.tracing import current_traceparent, default_tracer, producer_span

DEFAULT_MAX_AGE_S: Final = 24 * 3600.0
DEFAULT_DEAD_MAX_AGE_S: Final = 14 * 24 * 3600.0
PROMOTE_BATCH: Final = 1000  # delayed entries moved per script call: bounds one call's run time
REDRIVE_BATCH: Final = 500
# When XINFO GROUPS cannot give the lag (Redis reports null), count at most this many entries.
LAG_COUNT_CAP: Final = 10_000


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    length: int  # entries in the stream (delivered and acked ones too, until trimmed)
    lag: int  # entries not yet delivered to the group
    pending: int  # delivered, not yet acknowledged
    delayed: int  # waiting in the delayed set (retries with backoff, delayed enqueues)
    dead_letters: int
    oldest_pending_age_s: float
    oldest_undelivered_age_s: float

    @property
    def oldest_age_s(self) -> float:
        """Age of the oldest entry not yet done (pending or undelivered)."""
        return max(self.oldest_pending_age_s, self.oldest_undelivered_age_s)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry_id: str  # in the dead-letter stream (what `redrive` takes)
    job_id: str
    job_type: str
    attempts: int  # deliveries made before giving up
    error: str
    failed_at: float  # epoch seconds
    traceparent: str | None
    source_entry_id: str  # the entry's id in the stream when it died


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _is_missing_key(exc: BaseException) -> bool:
    return isinstance(exc, ResponseError) and "no such key" in str(exc).lower()


class JobQueue:
    """One named queue in a Redis; cheap to build (no I/O), share it per process."""

    def __init__(
        self,
        redis: aioredis.Redis,
        queue: str = "default",
        *,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        dead_max_age_s: float = DEFAULT_DEAD_MAX_AGE_S,
        tracer: trace.Tracer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_age_s <= 0 or dead_max_age_s <= 0:
            raise ValueError("max_age_s and dead_max_age_s must be positive")
        self.redis = redis
        self.keys: QueueKeys = queue_keys(queue)
        self.max_age_s = max_age_s
        self.dead_max_age_s = dead_max_age_s
        self.clock = clock
        self.scripts: QueueScripts = register_scripts(redis)
        self._tracer = tracer

    @property
    def name(self) -> str:
        return self.keys.queue

    def stream_minid(self, now: float | None = None) -> str:
        """The MINID that trims stream entries older than `max_age_s`."""
        return str(_ms((self.clock() if now is None else now) - self.max_age_s))

    def dead_minid(self, now: float | None = None) -> str:
        return str(_ms((self.clock() if now is None else now) - self.dead_max_age_s))

    async def enqueue(
        self,
        job_id: str,
        job_type: str,
        *,
        attempt: int = 0,
        traceparent: str | None = None,
        delay_s: float = 0,
    ) -> str:
        """Add a job; returns its stream entry id, or "" for a delayed job (it gets one when due).

        `attempt`: deliveries the job already had (0 for a new job). `traceparent`: None takes the
        current trace context, through a PRODUCER span of ours when the current span is recording;
        a caller passing one has made its own PRODUCER span.
        """
        tracer = self._tracer if self._tracer is not None else default_tracer()
        if traceparent is not None:
            tracer = None
        with producer_span(tracer, self.keys, job_id, job_type) as span:
            if traceparent is None:
                traceparent = current_traceparent()
            now = self.clock()
            entry = JobEntry(job_id, job_type, attempt, _ms(now + max(delay_s, 0)), traceparent)
            if delay_s > 0:
                await self.redis.zadd(self.keys.delayed, {entry.member(): entry.enqueued_at_ms})
                return ""
            entry_id = text(
                await self.redis.xadd(
                    self.keys.stream,
                    entry.fields(),  # type: ignore[arg-type]  # redis-py's dict is invariant
                    minid=self.stream_minid(now),
                    approximate=True,
                )
            )
            if span is not None:
                span.set_attribute("messaging.message.id", entry_id)
            return entry_id

    async def ensure_group(self) -> None:
        """Create the stream and its consumer group if missing (from the stream's start, so entries
        added before the first worker ran are delivered too)."""
        try:
            await self.redis.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def promote_due(self) -> int:
        """Move the delayed entries that are due into the stream; returns how many moved.

        Safe to call from every worker at once: each script call is atomic.
        """
        moved = 0
        while True:
            now = self.clock()
            count = int(
                await self.scripts.promote_due(
                    keys=[self.keys.delayed, self.keys.stream],
                    args=[_ms(now), self.stream_minid(now), PROMOTE_BATCH],
                )
            )
            moved += count
            if count < PROMOTE_BATCH:
                return moved

    async def stats(self) -> QueueStats:
        """Lag, pending, delayed and dead-letter counts and oldest ages, in two round trips at most.

        Ages are measured on the Redis clock (entry ids carry the server time they were added at).
        """
        keys = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.xinfo_groups(keys.stream)
        pipe.xpending(keys.stream, keys.group)
        pipe.xlen(keys.stream)
        pipe.xlen(keys.dead)
        pipe.zcard(keys.delayed)
        pipe.time()
        groups, pending, length, dead, delayed, server_time = await pipe.execute(
            raise_on_error=False
        )
        for reply in (groups, pending):
            if isinstance(reply, BaseException) and not _is_missing_key(reply):
                raise reply
        for reply in (length, dead, delayed, server_time):
            if isinstance(reply, BaseException):
                raise reply
        now_ms = server_time[0] * 1000 + server_time[1] // 1000
        group = _find_group(groups, keys.group)
        if group is None:
            # No group yet: nothing was ever delivered, every entry is lag.
            lag, last_delivered = int(length), "0-0"
            pending_count, oldest_pending = 0, None
        else:
            last_delivered = text(group["last-delivered-id"])
            lag_reply = group.get("lag")
            lag = (
                int(lag_reply) if lag_reply is not None else await self._count_after(last_delivered)
            )
            pending_count = int(pending["pending"]) if isinstance(pending, dict) else 0
            oldest_pending = text(pending["min"]) if pending_count and pending.get("min") else None
        oldest_undelivered = await self._first_after(last_delivered) if lag else None
        return QueueStats(
            queue=keys.queue,
            length=int(length),
            lag=lag,
            pending=pending_count,
            delayed=int(delayed),
            dead_letters=int(dead),
            oldest_pending_age_s=_age_s(oldest_pending, now_ms),
            oldest_undelivered_age_s=_age_s(oldest_undelivered, now_ms),
        )

    async def _first_after(self, entry_id: str) -> str | None:
        found = _entries(await self.redis.xrange(self.keys.stream, f"({entry_id}", "+", count=1))
        return found[0][0] if found else None

    async def _count_after(self, entry_id: str) -> int:
        reply = await self.redis.xrange(self.keys.stream, f"({entry_id}", "+", count=LAG_COUNT_CAP)
        return len(_entries(reply))

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest `limit` dead letters."""
        found = _entries(await self.redis.xrange(self.keys.dead, "-", "+", count=limit))
        return [_dead_letter(entry_id, fields) for entry_id, fields in found]

    async def redrive(self, entry_ids: Iterable[str] | Literal["all"]) -> int:
        """Move dead letters (by dead-letter entry id, or "all") back into the stream as fresh jobs
        (attempt 0); returns how many moved. Unknown ids are skipped."""
        keys = [self.keys.dead, self.keys.stream]
        if entry_ids == "all":
            moved = 0
            while True:
                count = await self._redrive_batch(keys, [])
                moved += count
                if count < REDRIVE_BATCH:
                    return moved
        ids = list(entry_ids)
        moved = 0
        for start in range(0, len(ids), REDRIVE_BATCH):
            moved += await self._redrive_batch(keys, ids[start : start + REDRIVE_BATCH])
        return moved

    async def _redrive_batch(self, keys: Sequence[str], ids: Sequence[str]) -> int:
        now = self.clock()
        args: list[str | int] = [self.stream_minid(now), _ms(now), REDRIVE_BATCH, *ids]
        return int(await self.scripts.redrive(keys=keys, args=args))

    async def check_noeviction(self) -> str | None:
        """None when the Redis runs `maxmemory-policy noeviction`, else a warning to log loudly."""
        try:
            reply = await self.redis.config_get("maxmemory-policy")
        except ResponseError as exc:
            # Managed Redis services often disable or rename CONFIG.
            return (
                f"could not check the job queue Redis's maxmemory-policy ({exc}); it must be "
                "noeviction, or queued jobs can be evicted silently"
            )
        policy = text(next(iter(reply.values()), None) or "") if reply else ""
        if policy == "noeviction":
            return None
        return (
            f"the job queue Redis runs maxmemory-policy {policy or 'unknown'!r}: under memory "
            "pressure it evicts queued jobs silently; set maxmemory-policy noeviction"
        )


def _find_group(groups: Any, name: str) -> dict[str, Any] | None:
    if not isinstance(groups, list):
        return None
    for group in groups:
        if text(group["name"]) == name:
            return dict(group)
    return None


def _age_s(entry_id: str | None, now_ms: int) -> float:
    if entry_id is None:
        return 0.0
    return max(now_ms - entry_id_ms(entry_id), 0) / 1000


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """XRANGE's entries as text (redis-py types its reply loosely: None entries, bytes or str)."""
    return [
        (text(entry_id), {text(k): text(v) for k, v in (fields or {}).items()})
        for entry_id, fields in reply or ()
        if entry_id is not None
    ]


def _dead_letter(entry_id: str, fields: dict[str, str]) -> DeadLetter:
    entry = JobEntry.parse(fields)
    failed_at = fields.get("failed_at", "")
    return DeadLetter(
        entry_id=entry_id,
        job_id=entry.job_id,
        job_type=entry.job_type,
        attempts=entry.attempt,
        error=fields.get("error", ""),
        failed_at=int(failed_at) / 1000 if failed_at.isdigit() else 0.0,
        traceparent=entry.traceparent,
        source_entry_id=fields.get("entry", ""),
    )
