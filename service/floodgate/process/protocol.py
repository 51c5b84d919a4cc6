"""uvicorn's httptools protocol with bounded request heads: size, header count and time to finish.

A request head (request target plus header names and values) over `max_header_bytes` or with more
than `max_headers` fields is answered 431 and the connection closed; a connection that has not
finished a request head `header_timeout_s` after it opened, or after the first byte of a later
request on a keep-alive connection, is closed without an answer (slowloris). Idle time between
keep-alive requests is not counted here: uvicorn's `timeout_keep_alive` governs it.

The per-request cost is a few attribute writes and one `loop.time()`: the timer is armed once and
re-armed lazily when it fires, not per request, and header fields are counted, not copied.
"""

from __future__ import annotations

import asyncio
import copyreg
from collections.abc import Callable
from typing import ClassVar, cast

import httptools
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from floodgate.web.problem_body import PROBLEM_JSON, problem_body


def _too_large_response(detail: str) -> bytes:
    body = problem_body(431, detail, type_slug="request-header-fields-too-large")
    head = (
        f"content-type: {PROBLEM_JSON}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class HeaderLimitedProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` plus head limits; configure a subclass with `header_limited_protocol`."""

    max_header_bytes: ClassVar[int] = 16 * 1024
    max_headers: ClassVar[int] = 100
    header_timeout_s: ClassVar[float] = 10.0
    _too_large: ClassVar[bytes] = b""
    _too_many: ClassVar[bytes] = b""

    # Per connection: bytes and fields of the head being read (exact, from the parser callbacks),
    # raw bytes received while it is unfinished, when reading it began (None while no head is
    # being read), the lazily re-armed deadline timer, and a 431 decided inside a parser callback.
    _head_bytes: int = 0
    _head_raw: int = 0
    _head_fields: int = 0
    _head_began: float | None = None
    _head_timer: asyncio.TimerHandle | None = None
    _rejection: bytes | None = None
    _earlier_cycles: tuple[RequestResponseCycle, ...] | list[RequestResponseCycle] = ()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a byte is held against the same deadline as a slow head.
        self._head_began = self.loop.time()
        self._head_timer = self.loop.call_at(
            self._head_began + self.header_timeout_s, self._head_deadline
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        # uvicorn marks only the newest cycle disconnected; an earlier pipelined one still running
        # would write into the closed transport (uvloop raises, and a traceback is logged).
        for cycle in self._earlier_cycles:
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's body, plus: a 431 raised from a parser callback, and a cap on a head that is
        # still incomplete after this chunk (httptools buffers a partial field without limit).
        self._unset_keepalive_if_required()
        if self._head_began is not None:
            self._head_raw += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._rejection is not None:
                self._reject(self._rejection)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # Raw bytes include framing (": ", CRLF) the exact count leaves out, hence the slack; the
        # exact limit still applies when the head completes.
        if self._head_began is not None and self._head_raw > 2 * self.max_header_bytes:
            self._reject(self._too_large)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._head_fields = 0
        if self._head_began is None:  # else: still the connection's first deadline
            self._head_began = self.loop.time()
            if self._head_timer is None:
                self._head_timer = self.loop.call_at(
                    self._head_began + self.header_timeout_s, self._head_deadline
                )

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Counted here exactly; the raw bytes in data_received are only a cap for unfinished heads.
        self._head_fields += 1
        self._head_bytes += len(name) + len(value)
        if self._head_fields > self.max_headers:
            self._rejection = self._too_many
            raise ValueError("too many header fields")
        if self._head_bytes > self.max_header_bytes:
            self._rejection = self._too_large
            raise ValueError("request head too large")
        # uvicorn's on_header, inlined: this runs for every header field of every request.
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_began = None
        self._head_raw = 0
        previous = self.cycle
        super().on_headers_complete()
        if previous is not None and not previous.response_complete:
            # Pipelining (rare): remember the unfinished earlier cycle for `connection_lost`.
            self._earlier_cycles = [
                c for c in (*self._earlier_cycles, previous) if not c.response_complete
            ]

    def _head_deadline(self) -> None:
        self._head_timer = None
        began = self._head_began
        if began is None or self.transport.is_closing():
            return  # no head in progress: the next on_message_begin re-arms
        if self.pipeline or (self.cycle is not None and not self.cycle.response_complete):
            # A pipelined head waits while earlier requests are answered (reading is paused when
            # the client does not read them): its clock starts again once the server is idle.
            # Closing now would cut a response mid-write.
            began = self._head_began = self.loop.time()
        deadline = began + self.header_timeout_s
        if self.loop.time() >= deadline:
            self.transport.close()
        else:  # a later head began after this timer was armed
            self._head_timer = self.loop.call_at(deadline, self._head_deadline)

    def _reject(self, response: bytes) -> None:
        self._head_began = None
        if self.transport.is_closing():
            return
        date = [b"%s: %s\r\n" % pair for pair in self.server_state.default_headers]
        self.transport.write(STATUS_LINE[431] + b"".join(date) + response)
        self.transport.close()


class _Configured(type):
    """Metaclass of the configured protocols, so they pickle as the call that makes them: a local
    class cannot be pickled by name, and `serve --reload` (uvicorn's reloader) pickles its config,
    `http=` included, into the child process it spawns."""


def _rebuild(max_header_bytes: int, max_headers: int, header_timeout_s: float) -> _Configured:
    made = header_limited_protocol(
        max_header_bytes=max_header_bytes,
        max_headers=max_headers,
        header_timeout_s=header_timeout_s,
    )
    return cast(_Configured, made)


def _reduce(configured: _Configured) -> tuple[Callable[..., _Configured], tuple[int, int, float]]:
    cls = cast(type[HeaderLimitedProtocol], configured)
    return _rebuild, (cls.max_header_bytes, cls.max_headers, cls.header_timeout_s)


copyreg.pickle(_Configured, _reduce)


def header_limited_protocol(
    *, max_header_bytes: int, max_headers: int, header_timeout_s: float
) -> type[HeaderLimitedProtocol]:
    """A protocol class for `uvicorn.Config(http=...)` with these limits."""
    too_large = _too_large_response(
        f"the request line and header fields exceed {max_header_bytes} bytes"
    )
    too_many = _too_large_response(f"more than {max_headers} header fields")

    class ConfiguredProtocol(HeaderLimitedProtocol, metaclass=_Configured):
        pass

    ConfiguredProtocol.max_header_bytes = max_header_bytes
    ConfiguredProtocol.max_headers = max_headers
    ConfiguredProtocol.header_timeout_s = header_timeout_s
    ConfiguredProtocol._too_large = too_large
    ConfiguredProtocol._too_many = too_many
    return ConfiguredProtocol
