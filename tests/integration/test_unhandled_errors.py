"""An unhandled error on a real server: a 500 problem on a keep-alive connection that stays
usable, one traceback in the log (no second one from the server), no statement parameters; a
connection error that escapes is a 503; an error after the response started aborts it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.support.error_app import SECRET, create_error_app
from tests.support.server import REPO, ServerProcess
from tests.support.services import free_port

TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    env["FLOODGATE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'errors.db'}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.error_app", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = ServerProcess(port=port, proc=proc, log=log)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{running.url}/healthz", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                running.terminate()
                raise RuntimeError(f"error app did not start:\n{running.output()}") from None
            time.sleep(0.05)
    yield running
    running.terminate()


def _exchange(sock: socket.socket, path: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on an open connection; the response read by its Content-Length."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response to {path}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-body of {path}"
        body += chunk
    return int(status_line.split()[1]), headers, body[:length]


def _settled_output(server: ServerProcess) -> str:
    time.sleep(0.3)  # log lines are written by the server process; let them land
    return server.output()


def test_a_500_leaves_the_keep_alive_connection_usable_and_logs_once(
    server: ServerProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        status, headers, body = _exchange(sock, "/test/boom")
        assert status == 500
        assert headers["content-type"] == "application/problem+json"
        assert headers.get("connection", "keep-alive") != "close"
        problem = json.loads(body)
        assert problem["status"] == 500
        assert "a bug in a route" not in body.decode()  # no exception text to the client
        for _ in range(2):  # the same connection keeps working
            status, _, _ = _exchange(sock, "/healthz")
            assert status == 200
        status, _, _ = _exchange(sock, "/test/boom")
        assert status == 500
        assert _exchange(sock, "/healthz")[0] == 200
    output = _settled_output(server)
    assert output.count("unhandled error on GET /test/boom") == 2
    assert output.count(TRACEBACK) == 2  # one per failed request, not two
    assert "Exception in ASGI application" not in output  # uvicorn saw nothing to log


def test_a_sql_bug_is_a_500_without_its_parameters(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        status, _, _ = _exchange(sock, "/test/sql-bug")
        assert status == 500  # sqlite3.OperationalError, but a syntax error: not "unavailable"
        assert _exchange(sock, "/healthz")[0] == 200
    output = _settled_output(server)
    assert output.count("unhandled error on GET /test/sql-bug") == 1
    assert "Exception in ASGI application" not in output
    assert SECRET not in output
    assert "SELEC" in output  # the traceback is there, with the statement but not its values


def test_a_connection_error_is_a_503_logged_once_without_a_traceback(
    server: ServerProcess,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for _ in range(3):
            status, headers, body = _exchange(sock, "/test/db-restarting")
            assert status == 503
            assert headers["retry-after"] == "1"
            assert json.loads(body)["type"].endswith("/unavailable")
        assert _exchange(sock, "/healthz")[0] == 200
    output = _settled_output(server)
    assert output.count("dependency unavailable on GET /test/db-restarting") == 1  # rate-limited
    assert "DBAPIError (AdminShutdownError): terminating connection" in output
    assert TRACEBACK not in output
    assert SECRET not in output


def test_an_error_after_the_response_started_aborts_the_connection(
    server: ServerProcess,
) -> None:
    with httpx.Client(base_url=server.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/test/boom-mid-stream")
        assert client.get("/healthz").status_code == 200  # the server itself is fine
    output = _settled_output(server)
    assert output.count(TRACEBACK) == 1  # the server's own, for the aborted response
    assert "unhandled error on" not in output


async def test_telemetry_still_counts_the_500_and_sees_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process: the 500 layer sits outside telemetry, which records the status and the error
    (the exception reaches it), while nothing escapes the app any more."""
    monkeypatch.setenv("FLOODGATE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    app = create_error_app()

    def count() -> float:
        labels = {"method": "GET", "status": "5xx", "handler": "/test/boom"}
        return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0

    before = count()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)  # raise_app_exceptions: nothing may escape
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/test/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert count() == before + 1
