"""Structured logs: one JSON object per line, with the current trace and span ids.

Every logger (ours, uvicorn's, gunicorn's, libraries') goes through one stdout handler. Values of
keys that look like credentials are redacted; nothing here ever logs a request or response body.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from floodgate.telemetry.tracing import current_trace_ids

# Attributes every LogRecord has; anything else on a record came from `extra=` and is emitted.
_RECORD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's ANSI-coloured duplicate of msg
}
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|authorization|api[_-]?key|cookie|dsn", re.I)
REDACTED: Final = "[redacted]"
# Fields every line logged in the current context carries (a job worker sets the job's id and type
# for each delivery's task, so a handler's and its libraries' lines name the job too).
LOG_FIELDS: ContextVar[Mapping[str, object] | None] = ContextVar(
    "floodgate_log_fields", default=None
)
_HANDLER_NAME: Final = "floodgate-json"
# Loggers that servers configure with handlers of their own: ours replaces them.
SERVER_LOGGERS: Final = ("uvicorn", "uvicorn.error", "gunicorn", "gunicorn.error")
# The servers' per-request access lines stay off: `floodgate.access` (sampled, with trace ids and
# the route template) replaces them.
SERVER_ACCESS_LOGGERS: Final = ("uvicorn.access", "gunicorn.access")


def _default(value: object) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    """`{ts, level, logger, msg, pid, trace_id, span_id, trace_sampled, **extra, exc}` per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        ids = current_trace_ids()
        if ids is not None:
            entry["trace_id"], entry["span_id"], entry["trace_sampled"] = ids
        fields = LOG_FIELDS.get()
        if fields:
            entry.update(fields)
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = REDACTED if _SECRET_KEY.search(key) else value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__qualname__
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=_default).decode()


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stdout` is at emit time (test runners swap it per test)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str = "info", *, stream: Any = None) -> None:
    """Route every logger through one JSON handler on stdout at `level` (idempotent).

    Handlers others attached to the root logger (a test runner's capture) are left in place.
    """
    root = logging.getLogger()
    handler = logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
    handler.setFormatter(JsonFormatter())
    handler.set_name(_HANDLER_NAME)
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
        server_logger.setLevel(level.upper())
    for name in SERVER_ACCESS_LOGGERS:
        access_logger = logging.getLogger(name)
        access_logger.handlers.clear()
        access_logger.propagate = False
    # Exporter retries are not the service's business at info level, and HTTP clients log full
    # URLs (query strings: tokens) for every request at info.
    for noisy in ("opentelemetry", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def gunicorn_logconfig(level: str = "info") -> dict[str, Any]:
    """`logconfig_dict` for gunicorn's arbiter: its own lines as JSON too."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        # Named like configure_logging's handler: a worker replaces it rather than adding a second.
        "handlers": {
            _HANDLER_NAME: {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": [_HANDLER_NAME]},
        "loggers": {
            "gunicorn.error": {"level": level.upper(), "handlers": [], "propagate": True},
            "gunicorn.access": {"level": level.upper(), "handlers": [], "propagate": False},
        },
    }
