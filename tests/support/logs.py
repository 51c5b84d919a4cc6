"""Capture the service's JSON log lines in a test."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from floodgate.telemetry.logs import configure_logging


@contextmanager
def json_log_stream(level: str = "info") -> Iterator[io.StringIO]:
    """Route logging through the JSON handler into a buffer; restore the root logger after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    configure_logging(level, stream=out)
    try:
        yield out
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]
