"""A raw HTTP/1.1 client for hostile inputs: send exact bytes, read back every response."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import BinaryIO

# Parser errors are answered by uvicorn itself, before the app (and its problem bodies) exist.
UVICORN_400_BODY = b"Invalid HTTP request received."

# Words that only appear in a body when internals leak: tracebacks, module paths, driver names.
LEAKS = (
    "Traceback",
    'File "',
    ".py",
    "sqlalchemy",
    "sqlite3",
    "aiosqlite",
    "asyncpg",
    "psycopg",
    "pydantic",
    "starlette",
    "uvicorn",
    "floodgate.app",
    "floodgate.web",
    "floodgate.db",
    "floodgate.domain",
    "floodgate.process",
    "Exception",
    "Error:",
    "SELECT ",
    "INSERT ",
)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_head: bytes = field(repr=False, default=b"")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Exchange:
    responses: list[RawResponse]
    closed: bool  # the server closed the connection (or reset it) after the last response


def _read_chunked(reader: BinaryIO) -> bytes:
    body = b""
    while True:
        size_line = reader.readline()
        if not size_line:
            return body
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while reader.readline() not in (b"\r\n", b""):
                pass
            return body
        body += reader.read(size)
        reader.readline()


def read_response(reader: BinaryIO, *, method: bytes = b"GET") -> RawResponse | None:
    """One response, or None if the connection closed first; pipelined bytes stay buffered."""
    status_line = reader.readline()
    if not status_line:
        return None
    parts = status_line.split()
    assert len(parts) >= 2, status_line
    assert parts[0].startswith(b"HTTP/1."), status_line
    status = int(parts[1])
    head = status_line
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        head += line
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if method == b"HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(reader)
    elif "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
    else:
        body = reader.read()
    return RawResponse(status=status, headers=headers, body=body, raw_head=head)


def exchange(
    port: int,
    *parts: bytes,
    pause_s: float = 0.0,
    expect: int | None = None,
    timeout_s: float = 5.0,
    head: bool = False,
) -> Exchange:
    """Send `parts` (pausing between them) on one connection; read until close, timeout or
    `expect` responses. Resets count as a close: the server may drop a hostile connection.
    `head`: the requests are HEAD, so responses carry no body whatever their headers say."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("rb")
    responses: list[RawResponse] = []
    closed = False
    try:
        for i, part in enumerate(parts):
            if i and pause_s:
                time.sleep(pause_s)
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        final = 0  # interim (1xx) responses do not count towards `expect`
        while expect is None or final < expect:
            try:
                response = read_response(reader, method=b"HEAD" if head else b"GET")
            except ConnectionResetError:
                closed = True
                break
            except TimeoutError:
                break  # still open, nothing more to read
            if response is None:
                closed = True
                break
            responses.append(response)
            final += response.status >= 200
            if response.headers.get("connection", "").lower() == "close":
                closed = True
                break
    finally:
        reader.close()
        sock.close()
    return Exchange(responses=responses, closed=closed)


def leaks(body: bytes) -> list[str]:
    text = body.decode("utf-8", errors="replace")
    return [word for word in LEAKS if word in text]


def assert_sound(response: RawResponse) -> None:
    """No 5xx, no internals in the body, and every 4xx the app answers is a problem document."""
    assert response.status < 500, (response.status, response.body[:500])
    assert not leaks(response.body), (leaks(response.body), response.body[:500])
    if 400 <= response.status < 500:
        if response.body == UVICORN_400_BODY:
            assert response.status == 400
            return  # the HTTP parser's refusal, sent before the request reaches the app
        assert response.content_type == "application/problem+json", (response, response.body)
        problem = response.json()
        assert isinstance(problem, dict)
        assert problem["status"] == response.status
        assert {"type", "title", "status", "detail"} <= problem.keys()


def request(
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    """A well-formed request (Host and, for a body, Content-Length added unless given)."""
    fields = {"Host": "127.0.0.1", **(headers or {})}
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in fields):
        fields["Content-Length"] = str(len(body))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode("latin-1") + b"\r\n" + body
