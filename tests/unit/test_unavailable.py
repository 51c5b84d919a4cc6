"""`is_unavailable` on real driver and SQLAlchemy exception instances: connection problems are
503s whatever wraps them, SQL errors a healthy server answered stay 500s; `describe` never logs
statement parameters."""

from __future__ import annotations

import errno
import socket
import sqlite3
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy.exc
from sqlalchemy.dialects.postgresql.asyncpg import (
    AsyncAdapt_asyncpg_connection,
    AsyncAdapt_asyncpg_dbapi,
)

from floodgate.db.unavailable import describe, is_unavailable

_DBAPI = AsyncAdapt_asyncpg_dbapi(asyncpg)  # type: ignore[no-untyped-call]
_SQL = "INSERT INTO users (email, name) VALUES ($1, $2) RETURNING users.id"
_PARAMS = ("secret.person@example.com", "Secret")


def _as_sqlalchemy(error: Exception, *, invalidated: bool = False) -> sqlalchemy.exc.StatementError:
    """`error` as SQLAlchemy's asyncpg dialect raises it: adapted, then wrapped (from it)."""
    try:
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(_DBAPI, error)
    except Exception as adapted:
        wrapped = sqlalchemy.exc.DBAPIError.instance(
            _SQL, _PARAMS, adapted, _DBAPI.Error, connection_invalidated=invalidated
        )
        wrapped.__cause__ = adapted
        return wrapped
    raise AssertionError("not translated")


def _sqlite_error(sql: str, connection: sqlite3.Connection) -> sqlite3.Error:
    try:
        connection.execute(sql)
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("no error")


UNAVAILABLE_ASYNCPG = [
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
    asyncpg.exceptions.ConnectionFailureError("connection failure"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.InternalClientError("unexpected message"),
]

BUGS_ASYNCPG = [
    asyncpg.UndefinedTableError('relation "nope" does not exist'),
    asyncpg.PostgresSyntaxError('syntax error at or near "SELEC"'),
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    asyncpg.DataError("invalid input for query argument $1"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
]


@pytest.mark.parametrize("error", UNAVAILABLE_ASYNCPG, ids=lambda e: type(e).__name__)
def test_connection_errors_are_unavailable_raw_and_wrapped(error: Exception) -> None:
    assert is_unavailable(error)  # the hot reads call asyncpg directly
    assert is_unavailable(_as_sqlalchemy(error))  # Core and the ORM get SQLAlchemy's wrapper


def test_the_wrapper_is_the_generic_dbapi_error() -> None:
    # Why a list of SQLAlchemy classes could not work: a shutdown is neither Operational nor
    # Interface error, just DBAPIError (and so is any other server error).
    wrapped = _as_sqlalchemy(asyncpg.AdminShutdownError("terminating connection"))
    assert type(wrapped) is sqlalchemy.exc.DBAPIError
    assert not isinstance(wrapped, sqlalchemy.exc.OperationalError)


@pytest.mark.parametrize("error", BUGS_ASYNCPG, ids=lambda e: type(e).__name__)
def test_sql_errors_are_not_unavailable(error: Exception) -> None:
    assert not is_unavailable(error)
    assert not is_unavailable(_as_sqlalchemy(error))


def test_sqlalchemy_disconnect_flag_and_pool_timeout() -> None:
    flagged = _as_sqlalchemy(asyncpg.DataError("whatever"), invalidated=True)
    assert is_unavailable(flagged)
    assert is_unavailable(sqlalchemy.exc.TimeoutError("QueuePool limit of size 4 reached"))
    assert not is_unavailable(sqlalchemy.exc.ArgumentError("bad argument"))
    assert not is_unavailable(sqlalchemy.exc.NoResultFound("No row was found"))


def test_a_connect_error_in_an_exception_chain() -> None:
    # raw_connection() and handlers that re-raise keep the cause on __cause__ / __context__.
    chained = RuntimeError("while checking out a connection")
    chained.__context__ = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    assert is_unavailable(chained)
    caused = RuntimeError("re-raised")
    caused.__cause__ = _as_sqlalchemy(asyncpg.CannotConnectNowError("starting up"))
    assert is_unavailable(caused)
    assert not is_unavailable(RuntimeError("a bug"))


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
        ConnectionResetError(errno.ECONNRESET, "reset"),
        BrokenPipeError(errno.EPIPE, "broken pipe"),
        TimeoutError(),
        socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        OSError(errno.ENETUNREACH, "Network is unreachable"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
    ],
    ids=repr,
)
def test_os_connect_errors_are_unavailable(error: OSError) -> None:
    assert is_unavailable(error)


def test_other_os_errors_are_bugs() -> None:
    assert not is_unavailable(FileNotFoundError(errno.ENOENT, "No such file"))
    assert not is_unavailable(PermissionError(errno.EACCES, "Permission denied"))


def test_sqlite_locked_and_unopenable_are_unavailable() -> None:
    first = sqlite3.connect(":memory:")
    bug = _sqlite_error("SELEC 1", first)
    assert isinstance(bug, sqlite3.OperationalError)
    assert not is_unavailable(bug)
    missing_column = _sqlite_error("CREATE TABLE t (a); SELECT b FROM t", first)
    assert not is_unavailable(missing_column)
    unmigrated = _sqlite_error("SELECT * FROM users", first)
    assert is_unavailable(unmigrated)  # documented: an unmigrated database is a 503
    with pytest.raises(sqlite3.OperationalError) as unopenable:
        sqlite3.connect("/nonexistent-dir/floodgate/db.sqlite")
    assert is_unavailable(unopenable.value)
    assert is_unavailable(sqlite3.OperationalError("database is locked"))
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", (), sqlite3.OperationalError("locked"))
    wrapped.orig.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[union-attr]
    assert is_unavailable(wrapped)


def test_sqlite_locked_for_real(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("CREATE TABLE t (a)")
    writer.execute("BEGIN EXCLUSIVE")
    reader = sqlite3.connect(path, timeout=0)
    error = _sqlite_error("SELECT * FROM t", reader)
    writer.execute("ROLLBACK")
    assert "locked" in str(error)
    assert is_unavailable(error)


def test_describe_names_the_classes_and_never_the_parameters() -> None:
    wrapped = _as_sqlalchemy(asyncpg.AdminShutdownError("terminating connection"))
    assert "secret.person" in str(wrapped)  # what a plain `%s` of the exception would log
    line = describe(wrapped)
    assert line == "DBAPIError (AdminShutdownError): terminating connection"
    assert "secret" not in line
    assert "INSERT" not in line
    pool = sqlalchemy.exc.TimeoutError("QueuePool limit of size 4 overflow 0 reached")
    assert describe(pool).startswith("TimeoutError: QueuePool limit")
    assert describe(ConnectionRefusedError(111, "refused")).startswith("ConnectionRefusedError")
