"""Hot reload of the policy file in real servers under load: quick, lossless, bad edits refused."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.ratelimit.support import HttpConnection, uvicorn_servers
from tests.support.services import RedisServer
from tests.unit.ratelimit.builders import policy_doc, rule_doc

pytestmark = pytest.mark.redis


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def policy_text(requests: int) -> str:
    rule = rule_doc(
        "reloaded",
        key="Header:X-Client",
        match={"path": {"type": "PathPrefix", "value": "/limited"}},
        limit={"requests": requests, "period": "1m"},
    )
    return yaml.safe_dump(policy_doc("live", rule))


async def test_edit_under_load_applies_within_a_second_without_failures(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text(100_000))
    env = {
        "FG_LIMITS_URL": redis_server.url,
        "FG_POLICY_FILE": str(path),
        "FG_KEY_TAG": f"reload-{uuid.uuid4().hex[:8]}",
    }
    with uvicorn_servers(2, env, log_dir=tmp_path) as ports:
        seen: list[tuple[float, int, str]] = []
        stop = asyncio.Event()

        async def client(port: int, number: int) -> None:
            conn = await HttpConnection.open(port)
            try:
                while not stop.is_set():
                    reply = await conn.get("/limited/x", {"X-Client": f"c{number}"})
                    seen.append(
                        (time.monotonic(), reply.status, reply.headers.get("ratelimit-policy", ""))
                    )
            finally:
                await conn.close()

        tasks = [asyncio.create_task(client(ports[i % 2], i)) for i in range(20)]
        await asyncio.sleep(1.0)
        edited_at = time.monotonic()
        write_atomically(path, policy_text(7))
        await asyncio.sleep(1.5)
        bad_at = time.monotonic()
        write_atomically(path, policy_text(7).replace("1m", "a minute"))
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)

    assert len(seen) > 200
    assert {status for _, status, _ in seen} <= {200, 429}, "no request may fail during a reload"
    new = [t for t, _, policy in seen if policy == '"reloaded";q=7;w=60']
    assert new, "the edited limit never showed up"
    assert new[0] - edited_at < 1.0
    old_after_switch = [t for t, _, p in seen if p.endswith("q=100000;w=60") and t > new[0] + 0.5]
    assert old_after_switch == []
    after_bad = [p for t, _, p in seen if t > bad_at]
    assert after_bad
    assert set(after_bad) == {'"reloaded";q=7;w=60'}  # the invalid edit changed nothing
    logs = "".join((tmp_path / f"server-{i}.log").read_text() for i in range(2))
    assert "rejected, keeping generation 2" in logs
    assert "spec.rules[0].limit.period: 'a minute' is not a period" in logs
