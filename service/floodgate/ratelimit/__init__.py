"""Rate limiting: RateLimitPolicy model, GCRA counter stores, client identity, ASGI middleware.

This package module re-exports the public names of its submodules (importing it imports them all).
The package is platform code: outside itself it uses only `floodgate.resilience`,
`floodgate.redis_client`, `floodgate.telemetry` and `floodgate.web.problem_body` (never the
domain or FastAPI). The app wires it like this::

    from floodgate.ratelimit import RateLimiter, RateLimitMiddleware

    limiter = RateLimiter.from_settings(           # builds; connects nothing
        limits_url=settings.limits_url,            # "memory://" or "redis://host:6379/0"
        policy_file=settings.policy_file,          # Path | None: YAML, hot-reloaded
        trusted_proxies=settings.trusted_proxies,  # CIDR strings or ip_network objects
        legacy_headers=False,                      # also send X-RateLimit-*
        timeout_s=0.25,                            # per store call
    )
    app.add_middleware(RateLimitMiddleware, limiter=limiter)  # = RateLimitMiddleware(app, limiter)

    # in the lifespan:
    await limiter.start()  # connects the store, applies the file (PolicyFileError if invalid)
    ...
    await limiter.close()

`await limiter.ping()` tells /readyz whether the counter store answers.

`floodgate policy validate FILE` is `floodgate.ratelimit.cli.validate_command(path, out) -> int`,
and `validate_policy_file(path) -> list[str]` returns the same errors as strings.

Other entry points: `RateLimiter(store, source=…, identity=…)` to assemble parts by hand;
`limiter.apply_policies(policies, origin=…, generation=…)` to push a policy set (the operator's
source does this); `limiter.check(scope) -> Decision | None` is what the middleware calls.

Semantics, in one place:

* A rule `limit: {requests: R, period: P}, burst: B` keeps one GCRA state per key: a fresh key may
  spend R + B quota units at once, which refill continuously at R per P (one every P/R, rounded up
  to a whole microsecond). Each matching request spends `cost` units (default 1).
* All rules a request matches are checked and charged in one atomic step, all-or-nothing: if any
  enforced rule denies, nothing is charged. Shadow-mode rules never deny; each is charged only when
  it would itself have allowed the request, and reports `shadow_deny` otherwise.
* With Redis, the checks of concurrent requests are coalesced into one Lua call per event-loop tick,
  which decides them one by one on the Redis clock; keys known to be over their limit are denied
  from a local memo until the store said they would allow again (the memo can only expire early,
  never deny wrongly).
* Store unreachable: fail open or closed (503) per policy; a circuit breaker stops calling a dead
  store for a cool-down and then probes it.
"""

from __future__ import annotations

from floodgate.ratelimit.gcra import (
    Charge,
    CounterStore,
    GcraLimit,
    Outcome,
    StoreUnavailable,
)
from floodgate.ratelimit.identity import ClientIdentity
from floodgate.ratelimit.limiter import RateLimiter
from floodgate.ratelimit.metrics import ratelimit_metrics
from floodgate.ratelimit.middleware import RateLimitMiddleware
from floodgate.ratelimit.model import RateLimitPolicy, parse_period
from floodgate.ratelimit.policyset import CompiledRule, PolicySet, compile_policies
from floodgate.ratelimit.responses import Decision
from floodgate.ratelimit.sources.base import PolicySink, PolicySource, StaticPolicySource
from floodgate.ratelimit.sources.file import (
    FilePolicySource,
    PolicyFileError,
    load_policy_file,
    parse_policy_documents,
    parse_policy_text,
    validate_policy_file,
)
from floodgate.ratelimit.stores import MemoryStore, RedisStore, store_from_url

__all__ = [
    "Charge",
    "ClientIdentity",
    "CompiledRule",
    "CounterStore",
    "Decision",
    "FilePolicySource",
    "GcraLimit",
    "MemoryStore",
    "Outcome",
    "PolicyFileError",
    "PolicySet",
    "PolicySink",
    "PolicySource",
    "RateLimitMiddleware",
    "RateLimitPolicy",
    "RateLimiter",
    "RedisStore",
    "StaticPolicySource",
    "StoreUnavailable",
    "compile_policies",
    "load_policy_file",
    "parse_period",
    "parse_policy_documents",
    "parse_policy_text",
    "ratelimit_metrics",
    "store_from_url",
    "validate_policy_file",
]
