"""Job rows on both backends: the claim/fence transitions that turn at-least-once delivery into
effects that happen once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from floodgate.db.migrate import upgrade
from floodgate.domain import MIGRATIONS_DIR
from floodgate.jobs.ids import uuid7_ms
from floodgate.jobs.store import Claim, Fenced, JobStore
from tests.support.services import PostgresServer


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def jobs_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('jobs') / 'jobs.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.url
    upgrade(url, MIGRATIONS_DIR)
    return url


@pytest.fixture
async def engine(jobs_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_async_engine(jobs_url, pool_size=4)
    async with eng.begin() as conn:
        await conn.execute(text("DELETE FROM jobs"))
        await conn.execute(text("CREATE TABLE IF NOT EXISTS effects (job_id TEXT, n INTEGER)"))
        await conn.execute(text("DELETE FROM effects"))
    yield eng
    await eng.dispose()


async def _effects(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT n FROM effects ORDER BY n"))).scalars())


async def _apply(store: JobStore, claim: Claim, n: int) -> None:
    async with store.effect(claim) as conn:
        await conn.execute(
            text("INSERT INTO effects VALUES (:j, :n)"), {"j": str(claim.job_id), "n": n}
        )
        await store.progress(conn, claim, done=n)


async def test_a_job_is_created_queued_with_a_time_ordered_id(engine: AsyncEngine) -> None:
    store = JobStore(engine)
    first = await store.create(queue="q", type="import", args={"n": 1}, total=10)
    second = await store.create(queue="q", type="import", args={"n": 2})
    assert first.id.version == 7
    assert first.id < second.id
    assert abs(uuid7_ms(first.id) / 1000 - first.created_at.timestamp()) < 1
    got = await store.get(first.id)
    assert got is not None
    assert (got.status, got.attempts, got.progress.done, got.progress.total) == (
        "queued",
        0,
        0,
        10,
    )
    assert got.result is None
    assert await store.get(uuid.uuid4()) is None


async def test_claim_once_per_run_and_duplicates_do_nothing(engine: AsyncEngine) -> None:
    store = JobStore(engine)
    job = await store.create(queue="q", type="t", args={"x": 1})
    claim = await store.claim(job.id, "1-0")
    assert claim is not None
    assert (claim.attempt, claim.args, claim.progress_done) == (1, {"x": 1}, 0)
    assert (await store.get(job.id)).status == "running"  # type: ignore[union-attr]
    # A second entry for the same job (the reconciler re-added it) while it runs: nothing to do.
    assert await store.claim(job.id, "2-0") is None
    await _apply(store, claim, 1)
    await store.succeed(claim, {"ok": True})
    done = await store.get(job.id)
    assert done is not None
    assert (done.status, done.result, done.progress.done) == ("succeeded", {"ok": True}, 1)
    assert done.finished_at is not None
    # Any later delivery of a finished job runs nothing.
    assert await store.claim(job.id, "1-0") is None
    assert await store.claim(job.id, "3-0") is None
    assert await _effects(engine) == [1]


async def test_a_takeover_fences_the_old_run(engine: AsyncEngine) -> None:
    store = JobStore(engine)
    job = await store.create(queue="q", type="t", args={})
    old = await store.claim(job.id, "1-0")
    assert old is not None
    await _apply(store, old, 1)
    # The same entry delivered again (its worker looked dead): the run is taken over.
    new = await store.claim(job.id, "1-0")
    assert new is not None
    assert (new.attempt, new.progress_done) == (2, 1)
    with pytest.raises(Fenced):
        await _apply(store, old, 2)  # nothing of it is written
    with pytest.raises(Fenced):
        await store.succeed(old, {"by": "old"})
    assert not await store.retrying(old, {"title": "x"}, 1.0)
    await _apply(store, new, 2)
    await store.succeed(new, {"by": "new"})
    assert await _effects(engine) == [1, 2]
    assert (await store.get(job.id)).result == {"by": "new"}  # type: ignore[union-attr]


async def test_retrying_then_dead_then_revived(engine: AsyncEngine) -> None:
    store = JobStore(engine)
    job = await store.create(queue="q", type="t", args={})
    claim = await store.claim(job.id, "1-0")
    assert claim is not None
    assert await store.retrying(claim, {"title": "boom"}, 30.0)
    row = await store.get(job.id)
    assert row is not None
    assert (row.status, row.problem) == ("retrying", {"title": "boom"})
    assert row.next_attempt_at is not None
    assert 29 < (row.next_attempt_at - row.updated_at).total_seconds() <= 30
    again = await store.claim(job.id, "2-0")  # the retry's own entry
    assert again is not None
    assert again.attempt == 2
    assert await store.dead(job.id, {"title": "gave up"})
    assert not await store.dead(job.id, {"title": "twice"})
    assert await store.claim(job.id, "2-0") is None
    assert await store.revive(job.id)
    revived = await store.get(job.id)
    assert revived is not None
    assert (revived.status, revived.attempts) == ("queued", 0)
    assert not await store.revive(job.id)  # only dead jobs


async def test_stale_queued_rows_come_back_once_per_period(engine: AsyncEngine) -> None:
    store = JobStore(engine)
    old = await store.create(queue="q", type="t", args={})
    running = await store.create(queue="q", type="t", args={})
    assert await store.claim(running.id, "1-0") is not None
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE jobs SET updated_at = :t"),
            {"t": old.updated_at.replace(year=old.updated_at.year - 1).replace(tzinfo=None)},
        )
    fresh = await store.create(queue="q", type="t", args={})
    found = await store.stale_queued(older_than_s=60)
    assert found == [(old.id, "q", "t")]
    assert fresh.id not in {f[0] for f in found}
    assert await store.stale_queued(older_than_s=60) == []  # touched: not again this period


@pytest.mark.postgres
async def test_racing_claims_one_wins(postgres_server: PostgresServer) -> None:
    await asyncio.to_thread(upgrade, postgres_server.url, MIGRATIONS_DIR)
    eng = create_async_engine(postgres_server.url, pool_size=20)
    try:
        store = JobStore(eng)
        jobs = [await store.create(queue="race", type="t", args={}) for _ in range(20)]
        for job in jobs:
            claims = await asyncio.gather(*(store.claim(job.id, f"{i}-0") for i in range(5)))
            assert sum(c is not None for c in claims) == 1
    finally:
        await eng.dispose()


@pytest.mark.postgres
async def test_a_takeover_waits_for_the_running_effect(postgres_server: PostgresServer) -> None:
    await asyncio.to_thread(upgrade, postgres_server.url, MIGRATIONS_DIR)
    eng = create_async_engine(postgres_server.url, pool_size=4)
    try:
        store = JobStore(eng)
        job = await store.create(queue="lock", type="t", args={})
        old = await store.claim(job.id, "1-0")
        assert old is not None
        async with store.effect(old) as conn:
            await store.progress(conn, old, done=5)
            takeover = asyncio.create_task(store.claim(job.id, "1-0"))
            await asyncio.sleep(0.3)
            assert not takeover.done()  # blocked on the row the effect holds
        new = await asyncio.wait_for(takeover, 5)
        assert new is not None
        assert (new.attempt, new.progress_done) == (2, 5)  # it sees the committed progress
    finally:
        await eng.dispose()
