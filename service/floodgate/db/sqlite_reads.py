"""Hot reads on SQLite without aiosqlite: a few threads, each with its own sqlite3 connection.

aiosqlite runs every cursor operation (open, execute, fetch, close) as a separate hop to its
connection's thread, and SQLAlchemy's async adapter adds greenlet switches around each. A one-row
read by id cost about 1 ms of the event loop's time that way; one hop to a thread that runs the
whole query costs about 0.1 ms (measured sequentially, 100 k rows, in page cache).

Only reads use this (see `floodgate.db.reads.SQLiteThreadReader`): writes stay on the engine, so
SQLAlchemy keeps owning transactions. In WAL mode readers never block the writer, and each statement
here runs in autocommit, so it sees every transaction committed before it started.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import URL

Row = tuple[Any, ...]


def database_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None when other connections could not share it
    (in-memory databases, `file:` URIs with their own options)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:") or url.query:
        return None
    return Path(database).resolve()


class SQLiteReadPool:
    """`fetch(sql, args)` on one of `threads` connections to `path`: one thread hop per query."""

    def __init__(self, path: Path, threads: int, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="floodgate-sqlite-read")

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # mode=rw: never create the file (the engine's first connect or a migration does).
            # isolation_level=None: no implicit transactions, every SELECT is its own snapshot.
            conn = sqlite3.connect(
                f"file:{quote(str(self.path))}?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,  # closed by `close()` from the event loop's thread
                cached_statements=256,
            )
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA query_only=ON")  # a read pool must never write
            with self._lock:
                self._opened.append(conn)
            self._local.conn = conn
        return conn

    def _run(self, sql: str, args: Sequence[Any], first: bool) -> list[Row]:
        cursor = self._connection().execute(sql, args)
        try:
            if first:
                row = cursor.fetchone()
                return [row] if row is not None else []
            return cursor.fetchall()
        finally:
            cursor.close()

    async def fetch(self, sql: str, args: Sequence[Any], *, first: bool = False) -> list[Row]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, sql, args, first)

    def close(self) -> None:
        """Wait for running queries, then close every connection."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
