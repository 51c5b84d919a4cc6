"""Bounded loopback load for the fault suite: concurrent clients creating and reading, counting
every outcome, stopping by themselves (a round limit and a deadline) or when told."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

CLIENTS = 8
MAX_ROUNDS = 300  # per client: a bound on the request count whatever the timing
REQUEST_TIMEOUT_S = 10.0


@dataclass
class Tally:
    """What one fault's load saw; the writes the service acknowledged, to be read back."""

    requests: int = 0
    ok: int = 0  # 2xx
    unavailable: int = 0  # 503 with Retry-After: the documented answer of an outage
    unavailable_without_retry_after: int = 0
    other_5xx: int = 0
    other: int = 0  # 4xx (none expected: every request is valid and the quota generous)
    refused: int = 0  # could not connect (the server was not listening)
    dropped: int = 0  # the connection ended without a (whole) response
    users: dict[int, str] = field(default_factory=dict)  # acknowledged: id -> email
    messages: dict[int, str] = field(default_factory=dict)  # acknowledged: id -> body
    samples: list[str] = field(default_factory=list)  # the first few unexpected outcomes

    @property
    def acknowledged(self) -> int:
        return len(self.users) + len(self.messages)

    def record(self, what: str, response: httpx.Response) -> None:
        self.requests += 1
        status = response.status_code
        if 200 <= status < 300:
            self.ok += 1
            return
        if status == 503 and response.headers.get("retry-after"):
            self.unavailable += 1
            return
        if status == 503:
            self.unavailable_without_retry_after += 1
        elif status >= 500:
            self.other_5xx += 1
        else:
            self.other += 1
        if len(self.samples) < 10:
            self.samples.append(f"{what}: {status} {response.text[:200]}")

    def failed(self, what: str, exc: httpx.TransportError) -> None:
        self.requests += 1
        if isinstance(exc, httpx.ConnectError):
            self.refused += 1
        else:
            self.dropped += 1
            if len(self.samples) < 10:
                self.samples.append(f"{what}: {type(exc).__name__} {exc}")


async def _client(
    url: Callable[[], str], name: str, tally: Tally, stop: asyncio.Event, deadline: float
) -> None:
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
    async with httpx.AsyncClient(timeout=timeout) as client:

        async def call(what: str, method: str, path: str, body: object = None) -> httpx.Response:
            try:
                response = await client.request(method, url() + path, json=body)
            except httpx.TransportError as exc:
                tally.failed(what, exc)
                await asyncio.sleep(0.1)  # a server that is away: do not spin
                return httpx.Response(599)
            tally.record(what, response)
            return response

        for i in range(MAX_ROUNDS):
            if stop.is_set() or time.monotonic() > deadline:
                return
            email = f"{name}-{i}@faults.example.com"
            body = {"name": name, "email": email}
            user = await call("create user", "POST", "/api/v1/users", body)
            if user.status_code == 201:
                user_id = user.json()["id"]
                tally.users[user_id] = email
                await call("read user", "GET", f"/api/v1/users/{user_id}")
                text = f"{name} message {i}"
                message = await call(
                    "create message", "POST", "/api/v1/messages", {"user_id": user_id, "body": text}
                )
                if message.status_code == 201:
                    message_id = message.json()["id"]
                    tally.messages[message_id] = text
                    await call("read message", "GET", f"/api/v1/messages/{message_id}")
            await call("list messages", "GET", "/api/v1/messages?limit=5")


async def run_load(
    url: Callable[[], str], label: str, tally: Tally, stop: asyncio.Event, *, max_seconds: float
) -> None:
    """`CLIENTS` clients into `tally` until `stop` is set, `max_seconds` pass or each client did
    `MAX_ROUNDS` rounds."""
    deadline = time.monotonic() + max_seconds
    await asyncio.gather(
        *(_client(url, f"{label}{n}", tally, stop, deadline) for n in range(CLIENTS))
    )


async def wait_for_successes(tally: Tally, count: int, *, timeout_s: float) -> None:
    """Until `count` more requests succeeded (or `timeout_s` passed: a slow machine)."""
    target = tally.ok + count
    deadline = time.monotonic() + timeout_s
    while tally.ok < target and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
