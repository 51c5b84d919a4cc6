"""One real `floodgate serve` (uvicorn, SQLite) for the hostile suite, checked after each case.

Every case must leave the server serving: after each test a fresh connection must get a normal
answer, and at the end the log must hold no unhandled error (a 500 is never a hostile input's due).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.integration.hostile.raw import exchange, request
from tests.support.server import FLOODGATE, ServerProcess, start_server

HEADER_TIMEOUT_S = 2.0
# A known defect, reported (test_slow_clients.py): the head deadline closes the transport of a
# connection whose pipelined responses are still being written; uvicorn then logs this.
KNOWN_PIPELINE_RACE = "unable to perform operation on <TCPTransport closed=True"


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("hostile")
    url = f"sqlite+aiosqlite:///{workdir / 'hostile.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    env["FLOODGATE_DATABASE_URL"] = url
    subprocess.run([str(FLOODGATE), "migrate"], env=env, cwd=workdir, check=True, timeout=120)
    process = start_server(
        {
            "FLOODGATE_DATABASE_URL": url,
            "FLOODGATE_GC_FREEZE": "false",
            "FLOODGATE_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        },
        workdir,
        timeout=120,
    )
    yield process
    log = process.output()
    process.terminate()
    assert "unhandled error" not in log, log[-5000:]
    traces = [line for line in log.splitlines() if "Traceback" in line]
    unknown = [line for line in traces if KNOWN_PIPELINE_RACE not in line]
    assert not unknown, unknown[0][:5000]


@dataclass(frozen=True)
class Seed:
    user_id: int
    message_ids: list[int]
    cursor: str  # the next_cursor of /messages?limit=1


@pytest.fixture(scope="package")
def seed(server: ServerProcess) -> Seed:
    with httpx.Client(base_url=server.url) as client:
        user = client.post("/api/v1/users", json={"name": "Seed", "email": "seed@example.com"})
        assert user.status_code == 201, user.text
        user_id = user.json()["id"]
        ids = [
            client.post("/api/v1/messages", json={"user_id": user_id, "body": f"m{i}"}).json()["id"]
            for i in range(4)
        ]
        page = client.get("/api/v1/messages", params={"user_id": user_id, "limit": 1}).json()
    return Seed(user_id=user_id, message_ids=ids, cursor=page["meta"]["next_cursor"])


def assert_serves_normally(server: ServerProcess, seed: Seed) -> None:
    assert server.proc.poll() is None, server.output()[-5000:]
    ex = exchange(
        server.port,
        request("GET", "/healthz") + request("GET", f"/api/v1/users/{seed.user_id}"),
        expect=2,
    )
    assert [r.status for r in ex.responses] == [200, 200], ex
    assert ex.responses[1].json()["email"] == "seed@example.com"


@pytest.fixture(autouse=True)
def still_serving(server: ServerProcess, seed: Seed) -> Iterator[None]:
    yield
    assert_serves_normally(server, seed)
