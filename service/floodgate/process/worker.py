"""The gunicorn worker class: uvicorn's worker with Floodgate's server settings (see `cli._serve`).

Gunicorn builds each worker in the arbiter just before forking it, so settings are read there.
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from floodgate.process.protocol import header_limited_protocol
from floodgate.settings import Settings, load_settings


def server_options(settings: Settings) -> dict[str, Any]:
    """`uvicorn.Config` options of both servers: the head-limited protocol, no proxy headers."""
    return {
        "http": header_limited_protocol(
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            header_timeout_s=settings.header_timeout_s,
        ),
        # Whose X-Forwarded-For/Forwarded is believed is FLOODGATE_TRUSTED_PROXIES' decision alone
        # (floodgate.ratelimit.identity): uvicorn's own handling (on for 127.0.0.1 by default)
        # would rewrite scope["client"] before the rate limiter sees the real peer.
        "proxy_headers": False,
        "forwarded_allow_ips": "",
        # No websocket routes: an Upgrade request is plain HTTP, not a bare text/plain 403.
        "ws": "none",
    }


class FloodgateWorker(UvicornWorker):  # type: ignore[misc]
    """`uvicorn_worker.UvicornWorker` with `server_options` (it merges CONFIG_KWARGS last)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.CONFIG_KWARGS = {"loop": "auto", **server_options(load_settings())}
        super().__init__(*args, **kwargs)
