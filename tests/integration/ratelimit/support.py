"""Helpers for the rate-limit integration tests: uvicorn subprocesses and a lean HTTP/1.1 client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.services import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[3]


@contextmanager
def uvicorn_servers(
    count: int, env: dict[str, str], log_dir: Path | None = None
) -> Iterator[list[int]]:
    """Start `count` uvicorn processes serving tests.integration.ratelimit.asgi_app; yield ports.

    With `log_dir`, each server's stderr goes to `log_dir/server-<i>.log`.
    """
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    logs = []
    try:
        for i in range(count):
            port = free_port()
            log = open(log_dir / f"server-{i}.log", "wb") if log_dir else None  # noqa: SIM115
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "--factory",
                        "tests.integration.ratelimit.asgi_app:create_app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                        "--no-access-log",
                    ],
                    cwd=REPO,
                    env={**os.environ, "PYTHONPATH": str(REPO), **env},
                    stderr=log,
                )
            )
            ports.append(port)
        for port in ports:
            wait_for_port(port, timeout=30)
        yield ports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            if log is not None:
                log.close()


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; much faster than a general client, to hammer servers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        lines = [f"GET {path} HTTP/1.1", "Host: test"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        reply = Reply(int(status_line.split(" ")[1]))
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                reply.headers[name.strip().lower()] = value.strip()
        reply.body = await self.reader.readexactly(int(reply.headers.get("content-length", "0")))
        return reply

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
