"""Whether an error means the database could not be reached (a 503), not a bug (a 500).

One classifier for every path: SQLAlchemy's wrappers (Core, ORM, pool), asyncpg's own exceptions
(the hot reads call the driver directly), sqlite3's (the SQLite read pool) and the OS's (connect).
SQLAlchemy's asyncpg dialect wraps most server errors as a generic `DBAPIError`, so the wrapper
class says nothing: the chain is walked to the driver's error and its SQLSTATE.
"""

from __future__ import annotations

import errno
import socket
import sqlite3

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc

# SQLSTATEs of a server that is away or refusing sessions: class 08 (connection exception) and
# admin_shutdown, crash_shutdown, cannot_connect_now (57P01-57P03), too_many_connections (53300).
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_CONNECTION_CLASS = "08"

# A peer that is not there (errnos of a plain OSError from connect; subclasses cover the rest).
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.EHOSTUNREACH,
        errno.EHOSTDOWN,
        errno.EADDRNOTAVAIL,
    }
)

# SQLite primary result codes of a database that cannot be used right now (busy, locked, I/O,
# full, unopenable, read-only), not of a bad statement.
_SQLITE_UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
    }
)
_SQLITE_UNAVAILABLE_TEXT = ("database is locked", "unable to open", "no such table")

# asyncpg.InterfaceError also means misuse (a bug); only these messages mean a lost connection.
_CLOSED_TEXT = ("connection is closed", "connection was closed", "underlying connection is closed")

_MAX_DEPTH = 8  # the chains are short (wrapper, adapter, driver); a bound guards against cycles


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps: SQLAlchemy's `orig`, then the `__cause__`/`__context__` chain."""
    chain: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(chain) < _MAX_DEPTH:
        current = pending.pop(0)
        if any(current is seen for seen in chain):
            continue
        chain.append(current)
        orig = getattr(current, "orig", None)
        for nxt in (orig, current.__cause__, current.__context__):
            if isinstance(nxt, BaseException):
                pending.append(nxt)
    return chain


def _one_is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True  # SQLAlchemy's dialect saw a disconnect (and invalidated the connection)
    if isinstance(exc, sqlalchemy.exc.TimeoutError | sqlalchemy.exc.DisconnectionError):
        return True  # no pooled connection within pool_timeout; a pool-level disconnect
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(sqlstate, str) and (
        sqlstate.startswith(_CONNECTION_CLASS) or sqlstate in _UNAVAILABLE_SQLSTATES
    ):
        return True  # asyncpg's error, or SQLAlchemy's adapted copy of it (it keeps the code)
    if isinstance(exc, asyncpg.InternalClientError):
        return True  # a protocol left mid-operation by a server that went away
    if isinstance(exc, asyncpg.InterfaceError):
        return any(text in str(exc) for text in _CLOSED_TEXT)
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_UNAVAILABLE_CODES:
            return True
        # "no such table": the file is there but not migrated yet (documented as a 503).
        return any(text in str(exc) for text in _SQLITE_UNAVAILABLE_TEXT)
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror | socket.herror):
        return True  # refused, reset, broken pipe, timed out, name not resolved
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc`, or an error it wraps, means the database is unreachable or refusing us.

    False for everything else, including SQL errors a healthy server answered (a bug: a 500).
    """
    return any(_one_is_unavailable(link) for link in _causes(exc))


def driver_error(exc: BaseException) -> BaseException:
    """The innermost error `exc` wraps (the driver's), or `exc` itself."""
    return _causes(exc)[-1] if isinstance(exc, sqlalchemy.exc.StatementError) else exc


def describe(exc: BaseException) -> str:
    """`Class (DriverClass): message` for a log line: never the SQL or its parameters.

    SQLAlchemy's `str()` appends `[SQL: ...]` and `[parameters: ...]` (which may hold an email);
    the driver's message has neither.
    """
    inner = driver_error(exc)
    if inner is exc:
        message = str(exc)
        # Cut SQLAlchemy's own suffixes from a wrapper that wraps nothing (a pool timeout).
        for marker in ("\n[SQL:", "\n[parameters:", "\n(Background on this error"):
            message = message.split(marker, 1)[0]
        return f"{type(exc).__qualname__}: {message.strip()}"
    message = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(exc).__qualname__} ({type(inner).__qualname__}): {message}"
