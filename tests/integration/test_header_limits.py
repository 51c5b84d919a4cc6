"""Bounded request heads on a real `floodgate serve`, with raw sockets: size, count and time."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import BinaryIO

import pytest

from tests.support.server import ServerProcess, start_server

TIMEOUT_S = 1.5


@pytest.fixture(scope="module", params=[1, 2], ids=["uvicorn", "gunicorn-2-workers"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "FLOODGATE_MAX_HEADER_BYTES": "4096",
        "FLOODGATE_MAX_HEADERS": "20",
        "FLOODGATE_HEADER_TIMEOUT_S": str(TIMEOUT_S),
        "FLOODGATE_GC_FREEZE": "false",
    }
    process = start_server(
        env, tmp_path_factory.mktemp("heads"), workers=request.param, timeout=120
    )
    yield process
    process.terminate()


class Connection:
    """A raw client socket with a buffered reader (pipelined responses arrive together)."""

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader: BinaryIO = self.sock.makefile("rb")

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()
        self.sock.close()

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def settimeout(self, seconds: float) -> None:
        self.sock.settimeout(seconds)


def _connect(server: ServerProcess) -> Connection:
    return Connection(server)


def _read_response(conn: Connection) -> tuple[int, dict[str, str], bytes]:
    """One response; bytes past it (pipelined responses) stay buffered for the next call."""
    reader = conn.reader
    status_line = reader.readline()
    assert status_line, "closed before a response"
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    return status, headers, body


def _closed(conn: Connection) -> bool:
    try:
        return conn.reader.read(1) == b""
    except ConnectionResetError:
        return True


def _request(*headers: str) -> bytes:
    return ("GET /healthz HTTP/1.1\r\nHost: x\r\n" + "".join(f"{h}\r\n" for h in headers)).encode(
        "latin-1"
    ) + b"\r\n"


def _assert_431(server: ServerProcess, payload: bytes) -> dict[str, object]:
    with _connect(server) as sock:
        sock.sendall(payload)
        status, headers, body = _read_response(sock)
        assert status == 431
        assert headers["content-type"] == "application/problem+json"
        assert headers["connection"] == "close"
        problem: dict[str, object] = json.loads(body)
        assert problem["status"] == 431
        assert problem["title"] == "Request Header Fields Too Large"
        assert str(problem["type"]).endswith("/request-header-fields-too-large")
        assert _closed(sock)
    return problem


def test_one_oversized_header_is_431(server: ServerProcess) -> None:
    problem = _assert_431(server, _request("X-Big: " + "a" * 5000))
    assert "4096 bytes" in str(problem["detail"])


def test_too_many_headers_is_431(server: ServerProcess) -> None:
    problem = _assert_431(server, _request(*(f"X-H{i}: v" for i in range(25))))
    assert "20 header fields" in str(problem["detail"])


def test_total_header_bytes_over_the_limit_is_431(server: ServerProcess) -> None:
    # Every field is small and the count is allowed: only the sum is too large.
    _assert_431(server, _request(*(f"X-H{i}: {'v' * 300}" for i in range(15))))


def test_long_request_target_counts_towards_the_head(server: ServerProcess) -> None:
    _assert_431(server, f"GET /healthz?q={'a' * 5000} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def test_a_head_that_never_ends_is_cut_off_before_it_is_buffered_whole(
    server: ServerProcess,
) -> None:
    # No end of head in sight: the server answers once the raw bytes alone are over the cap.
    with _connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000)
        status, _headers, _body = _read_response(sock)
        assert status == 431


def test_headers_at_the_limits_are_served(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(_request(*(f"X-H{i}: {'v' * 100}" for i in range(19))))
        status, _headers, _body = _read_response(sock)
        assert status == 200


def test_a_slow_drip_is_closed_after_the_timeout(server: ServerProcess) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for i in range(int(TIMEOUT_S * 10)):
            try:
                sock.sendall(f"X-Drip-{i}: 1\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.25)
        if not closed:
            sock.settimeout(TIMEOUT_S * 3)
            closed = _closed(sock)
        elapsed = time.monotonic() - started
        assert closed, "a connection dripping its head was never closed"
        assert elapsed < TIMEOUT_S * 3 + 1


def test_a_silent_connection_is_closed_after_the_timeout(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.settimeout(TIMEOUT_S * 3)
        assert _closed(sock)


def test_keep_alive_client_is_unaffected(server: ServerProcess) -> None:
    # 100 requests on one connection, the whole run longer than the head timeout, with pauses
    # between requests (idle keep-alive, governed by uvicorn's timeout_keep_alive instead).
    with _connect(server) as sock:
        started = time.monotonic()
        for i in range(100):
            sock.sendall(_request(f"X-Request: {i}"))
            status, headers, body = _read_response(sock)
            assert status == 200, i
            assert json.loads(body)
            assert headers.get("connection") != "close"
            if i % 25 == 24:
                time.sleep(TIMEOUT_S * 0.8)
        assert time.monotonic() - started > TIMEOUT_S


def test_pipelined_requests_are_all_answered(server: ServerProcess) -> None:
    with _connect(server) as sock:
        sock.sendall(_request() * 5)
        assert [_read_response(sock)[0] for _ in range(5)] == [200] * 5
