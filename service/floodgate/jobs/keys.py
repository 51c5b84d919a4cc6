"""Redis key names of one job queue: stream, dead letters and delayed set under one hash tag.

All keys of a queue share the tag `{<queue>}`, so they live in one Redis Cluster slot and the Lua
scripts that move entries between them (retry, dead-letter, promotion, redrive) stay single-slot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "floodgate:jobs"
GROUP: Final = "floodgate-workers"
# No braces (they would end the hash tag early), no colons (they separate key parts), not empty.
_QUEUE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The names for `queue`: `floodgate:jobs:{<queue>}:stream|dead|delayed` and the group."""

    queue: str
    stream: str
    dead: str
    delayed: str
    group: str = GROUP


def queue_keys(queue: str, *, prefix: str = PREFIX) -> QueueKeys:
    if not _QUEUE_NAME.match(queue):
        raise ValueError(f"queue name {queue!r} must match [A-Za-z0-9_.-]{{1,64}}")
    base = f"{prefix}:{{{queue}}}"
    return QueueKeys(
        queue=queue, stream=f"{base}:stream", dead=f"{base}:dead", delayed=f"{base}:delayed"
    )
