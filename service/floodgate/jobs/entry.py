"""A job's stream entry (fields `id`, `type`, `attempt`, `enqueued_at`, `traceparent`) and the
context a handler receives for one delivery of it.

`attempt` in an entry counts the deliveries of *earlier* entries of the same job (a retry is a new
entry); the deliveries of the entry itself are the consumer group's count (see `worker.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson


def text(value: bytes | str) -> str:
    """Redis replies are bytes unless the client decodes them; the queue works with either."""
    return value.decode() if isinstance(value, bytes) else value


def entry_id_ms(entry_id: str) -> int:
    """The Redis server time (ms) at which an auto-generated stream entry id was assigned."""
    return int(entry_id.partition("-")[0])


@dataclass(frozen=True, slots=True)
class JobEntry:
    """What a stream entry says about its job."""

    job_id: str
    job_type: str
    attempt: int
    # When the entry became runnable (epoch ms): enqueue time, or the due time of a delayed entry.
    enqueued_at_ms: int
    traceparent: str | None = None

    def fields(self) -> dict[str, str]:
        fields = {
            "id": self.job_id,
            "type": self.job_type,
            "attempt": str(self.attempt),
            "enqueued_at": str(self.enqueued_at_ms),
        }
        if self.traceparent:
            fields["traceparent"] = self.traceparent
        return fields

    def member(self) -> str:
        """The delayed-set member: the fields as a flat JSON array, which the Lua scripts unpack
        into XADD."""
        flat = [part for pair in self.fields().items() for part in pair]
        return orjson.dumps(flat).decode()

    @classmethod
    def parse(cls, fields: Mapping[bytes, bytes] | Mapping[str, str]) -> JobEntry:
        """Tolerant: a malformed entry still becomes a job (it then fails and is dead-lettered)
        rather than an exception in the worker loop."""
        values = {text(k): text(v) for k, v in fields.items()}
        return cls(
            job_id=values.get("id", ""),
            job_type=values.get("type", ""),
            attempt=_int(values.get("attempt")),
            enqueued_at_ms=_int(values.get("enqueued_at")),
            traceparent=values.get("traceparent") or None,
        )


def _int(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class JobContext:
    """One delivery of a job, as its handler and the hooks see it."""

    job_id: str
    type: str
    # Deliveries of this job so far, this one included (1 on the first run); crash redeliveries
    # count, so a job that kills its worker still reaches `max_deliveries`.
    attempt: int
    traceparent: str | None
    entry_id: str
    queue: str
    enqueued_at: float  # epoch seconds at which the entry became runnable
    # Per-delivery scratch space shared by the hooks and the handler: e.g. the row claim (and its
    # fence) that `on_start` took, which the handler's effects must be written under.
    state: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
