"""Two-tier response and value cache: L1 in process, L2 in Redis, single-flight, ETag, invalidation.

The whole API (design and guarantees: docs/caching.md):

Build in the app factory (no I/O), open and close in the lifespan::

    cache = TieredCache.from_settings(
        settings.cache_url,    # FLOODGATE_CACHE_URL: L2 = the pod's Redis sidecar, or memory://
        settings.limits_url,   # FLOODGATE_LIMITS_URL: shared Redis for invalidations, or memory://
        l1_max_entries=10_000,
        default_ttl_s=30.0,
        timeout_s=0.25,        # ...and any other CacheConfig field by name
    )
    await cache.start()        # in the lifespan; never fails on an unreachable Redis
    await cache.close()

Responses: a GET route opts in by declaration; hits are served before FastAPI routes the request::

    MESSAGE = CachedRoute(
        name="message",
        namespace="messages",
        path="/api/v1/messages/{id}",
        path_params={"id": int},                      # "007" and "7" share one key
        query_params={"fields": Param(str, default="all")},   # undeclared ones are ignored
        ttl_s=60,                                     # optional, else default_ttl_s
        vary=("accept-language",),                    # optional
    )
    app.add_middleware(ResponseCacheMiddleware, cache=cache, routes=[MESSAGE])
    assert not check_routes(app, [MESSAGE])   # in a test: the key covers all the endpoint reads

Values: anything JSON-able (or any `Codec`), e.g. a COUNT(*) total::

    total = await cache.get_or_load(make_key("messages", "total", user_id=uid), count_rows, ttl=5)

Invalidation, after the transaction commits; returns once every process has evicted::

    await cache.invalidate(MESSAGE, id=7)               # one response, all its variants
    await cache.invalidate_keys(make_key("messages", "total", user_id=uid), MESSAGE.key(id=7))
    await cache.invalidate_namespace("messages")        # bulk (scans L2): for rare changes
    await cache.invalidate_all()

Readiness: `await cache.check()` gives {"l2": bool, "bus": bool}. Metrics:
`floodgate_cache_lookups_total{tier,result}`, `floodgate_cache_fills_total{outcome}`,
`floodgate_cache_backend_errors_total{backend}`, `floodgate_cache_invalidations_total{origin}`.
"""

from floodgate.cache.config import CacheConfig
from floodgate.cache.entry import BYTES, JSON, Codec, ResponseEntry
from floodgate.cache.etag import if_none_match_hits, make_etag, parse_if_none_match
from floodgate.cache.keys import Param, make_key
from floodgate.cache.middleware import ResponseCacheMiddleware
from floodgate.cache.routes import CachedRoute, check_routes
from floodgate.cache.tiered import Loaded, TieredCache

__all__ = [
    "BYTES",
    "JSON",
    "CacheConfig",
    "CachedRoute",
    "Codec",
    "Loaded",
    "Param",
    "ResponseCacheMiddleware",
    "ResponseEntry",
    "TieredCache",
    "check_routes",
    "if_none_match_hits",
    "make_etag",
    "make_key",
    "parse_if_none_match",
]
