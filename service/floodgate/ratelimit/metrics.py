"""Prometheus metrics of the rate limiter, created once per registry (cheap import, safe reuse)."""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import NamedTuple

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge


class DecisionCounters(NamedTuple):
    """The `floodgate_ratelimit_decisions_total` children of one rule, bound at compile time."""

    allow: Counter
    deny: Counter
    shadow_deny: Counter


@dataclass(frozen=True)
class RateLimitMetrics:
    decisions: Counter
    backend_errors: Counter
    policy_generation: Gauge

    def for_rule(self, policy: str, rule: str) -> DecisionCounters:
        return DecisionCounters(
            self.decisions.labels(policy=policy, rule=rule, decision="allow"),
            self.decisions.labels(policy=policy, rule=rule, decision="deny"),
            self.decisions.labels(policy=policy, rule=rule, decision="shadow_deny"),
        )


_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, RateLimitMetrics] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def ratelimit_metrics(registry: CollectorRegistry | None = None) -> RateLimitMetrics:
    """The metrics registered in `registry` (default: the global one), created on first use.

    Several limiters (several app instances in one test process) share them instead of failing on
    duplicate registration.
    """
    target = REGISTRY if registry is None else registry
    with _lock:
        found = _by_registry.get(target)
        if found is None:
            found = RateLimitMetrics(
                decisions=Counter(
                    "floodgate_ratelimit_decisions",
                    "Rate-limit decisions per rule: allow, deny, or shadow_deny (Shadow mode).",
                    ["policy", "rule", "decision"],
                    registry=target,
                ),
                backend_errors=Counter(
                    "floodgate_ratelimit_backend_errors",
                    "Requests whose limits could not be checked because the counter store failed "
                    "or its circuit breaker was open.",
                    registry=target,
                ),
                policy_generation=Gauge(
                    "floodgate_policy_generation",
                    "Generation of the rate-limit policy set this process applies.",
                    registry=target,
                    multiprocess_mode="livemin",
                ),
            )
            _by_registry[target] = found
        return found
