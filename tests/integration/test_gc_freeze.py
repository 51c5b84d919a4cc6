"""The start-up heap is frozen once the lifespan has connected (full GC passes then skip it) and
thawed at shutdown."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from floodgate.app import create_app
from floodgate.db.migrate import upgrade
from floodgate.domain import MIGRATIONS_DIR
from floodgate.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}"
    upgrade(url, MIGRATIONS_DIR)  # runs its own event loop, so not from inside the test's
    return url


@pytest.mark.parametrize("freeze", [True, False])
async def test_lifespan_freezes_the_startup_heap(
    database_url: str, unfrozen: None, freeze: bool
) -> None:
    url = database_url
    app = create_app(Settings(database_url=url, gc_freeze=freeze))  # type: ignore[arg-type]
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
        # The app object itself was built before start-up, so it is among the frozen ones.
        assert (frozen > 10_000) is freeze
        assert any(o is app for o in gc.get_objects()) is not freeze
    assert gc.get_freeze_count() == 0  # thawed at shutdown
