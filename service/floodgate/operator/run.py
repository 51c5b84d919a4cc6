"""`floodgate operator`: run the kopf operator standalone (one replica, no peering)."""

from __future__ import annotations

import asyncio
import logging

import kopf

from floodgate.operator.handlers import build_registry


def run_operator(
    *,
    limits_url: str,
    namespaces: list[str] | None = None,
    liveness_endpoint: str | None = "http://0.0.0.0:8080/healthz",
) -> None:
    if not limits_url.startswith(("redis://", "rediss://", "unix://")):
        raise SystemExit(
            "floodgate operator: FLOODGATE_LIMITS_URL must point at the shared Redis "
            f"(got {limits_url!r}); the pods read policies from there"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per status patch is noise
    registry = build_registry(limits_url)
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces or (),
            liveness_endpoint=liveness_endpoint,
        )
    )
