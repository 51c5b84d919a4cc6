"""Stampede: N concurrent misses on one cold key, and how many database queries they caused."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass


@dataclass
class StampedeRound:
    message_id: int
    requests: int
    statuses: dict[int, int]
    queries: int
    seconds: float


async def _one(port: int, path: str, go: asyncio.Event) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await go.wait()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()
        return int(status_line.split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    finally:
        writer.close()


async def fire(port: int, path: str, concurrency: int, timeout_s: float = 60.0) -> Counter[int]:
    """Open `concurrency` connections first, then send every request at the same moment."""
    go = asyncio.Event()
    tasks = [asyncio.create_task(_one(port, path, go)) for _ in range(concurrency)]
    await asyncio.sleep(0.5)  # let the connections be accepted before the burst
    go.set()
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout_s)
    return Counter(d if isinstance(d, int) else 0 for d in done)
