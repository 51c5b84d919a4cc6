"""The rate limiter: match a request to rules, charge the store, turn outcomes into a decision."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from floodgate.ratelimit.gcra import (
    Charge,
    CounterStore,
    Outcome,
    StoreUnavailable,
    ceil_div,
    monotonic_us,
)
from floodgate.ratelimit.identity import ClientIdentity, IPNetwork, hash_value
from floodgate.ratelimit.metrics import RateLimitMetrics, ratelimit_metrics
from floodgate.ratelimit.model import RateLimitPolicy
from floodgate.ratelimit.policyset import (
    EMPTY_POLICY_SET,
    CompiledRule,
    PolicySet,
    compile_policies,
)
from floodgate.ratelimit.responses import (
    Decision,
    limit_item,
    rejection,
    rule_headers,
    rules_headers,
)
from floodgate.ratelimit.sources.base import PolicySource
from floodgate.ratelimit.sources.file import FilePolicySource
from floodgate.ratelimit.stores import store_from_url
from floodgate.resilience import RateLimitedLog

logger = logging.getLogger("floodgate.ratelimit")

# Header seconds are whole and rounded up: a client that waits this long is never early. The GCRA
# durations they come from are never negative.
US_PER_S = 1_000_000


class RateLimiter:
    """The applied PolicySet, the counter store and client identity; see the package docstring."""

    def __init__(
        self,
        store: CounterStore,
        *,
        source: PolicySource | None = None,
        identity: ClientIdentity | None = None,
        legacy_headers: bool = False,
        key_tag: str = "floodgate",
        memo_size: int = 100_000,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], int] = monotonic_us,
    ) -> None:
        self.store = store
        self.source = source
        self.identity = identity if identity is not None else ClientIdentity()
        self.legacy_headers = legacy_headers
        self.key_tag = key_tag
        self.metrics: RateLimitMetrics = ratelimit_metrics(registry)
        self._policy_set = EMPTY_POLICY_SET
        self._generation = 0
        self._clock = clock
        # Keys known to be over their limit: key → (monotonic µs until which they certainly deny,
        # remaining).
        self._memo: dict[str, tuple[int, int]] | None = {} if store.remote else None
        self._memo_size = memo_size
        self._log = RateLimitedLog(logger)
        self.last_errors: list[str] = []

    @classmethod
    def from_settings(
        cls,
        *,
        limits_url: str,
        policy_file: Path | None = None,
        trusted_proxies: Sequence[str | IPNetwork] = (),
        legacy_headers: bool = False,
        timeout_s: float = 0.25,
        breaker_failures: int = 3,
        breaker_cooldown_s: float = 1.0,
        coalesce: bool = True,
        poll_interval_s: float = 0.25,
        key_tag: str = "floodgate",
        policy_source: PolicySource | None = None,
        registry: CollectorRegistry | None = None,
    ) -> RateLimiter:
        """Build (not start) a limiter from the settings; nothing connects before start()."""
        if policy_source is None and policy_file is not None:
            policy_source = FilePolicySource(policy_file, poll_interval_s=poll_interval_s)
        store = store_from_url(
            limits_url,
            timeout_s=timeout_s,
            breaker_failures=breaker_failures,
            breaker_cooldown_s=breaker_cooldown_s,
            coalesce=coalesce,
        )
        return cls(
            store,
            source=policy_source,
            identity=ClientIdentity(trusted_proxies),
            legacy_headers=legacy_headers,
            key_tag=key_tag,
            registry=registry,
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the store, apply the source's initial policies (PolicyFileError if invalid)."""
        await self.store.start()
        if self.source is not None:
            try:
                await self.source.start(self)
            except BaseException:
                await self.store.close()
                raise

    async def close(self) -> None:
        if self.source is not None:
            await self.source.close()
        await self.store.close()

    async def ping(self) -> bool:
        """True when the counter store answers: for /readyz."""
        return await self.store.ping()

    # -- policies (PolicySink) ---------------------------------------------------------------------

    @property
    def policy_set(self) -> PolicySet:
        return self._policy_set

    def apply_policies(
        self,
        policies: Sequence[RateLimitPolicy],
        *,
        origin: str = "api",
        generation: int | None = None,
    ) -> PolicySet:
        """Compile `policies` and swap them in at once; raises ValueError if they conflict."""
        next_generation = self._generation + 1 if generation is None else generation
        compiled = compile_policies(
            policies,
            generation=next_generation,
            origin=origin,
            key_tag=self.key_tag,
            metrics=self.metrics,
        )
        self._policy_set = compiled
        self._generation = next_generation
        if self._memo is not None:
            self._memo.clear()  # limits may have changed under the same keys
        self.last_errors = []
        self.metrics.policy_generation.set(next_generation)
        logger.info(
            "rate-limit policies applied: generation %d, %d policies, %d rules, from %s",
            next_generation,
            len(compiled.policies),
            len(compiled.rules),
            origin,
        )
        return compiled

    def report_invalid(self, errors: Sequence[str], *, origin: str) -> None:
        self.last_errors = list(errors)
        logger.error(
            "rate-limit policies from %s rejected, keeping generation %d:\n  %s",
            origin,
            self._generation,
            "\n  ".join(errors),
        )

    # -- the hot path ------------------------------------------------------------------------------

    def charges_for(self, rules: Sequence[CompiledRule], scope: Mapping[str, Any]) -> list[Charge]:
        """The counter key of each matched rule for this request."""
        charges: list[Charge] = []
        client_key: str | None = None
        for rule in rules:
            kind = rule.key_kind
            if kind == "Global":
                ident = "global"
            else:
                ident = ""
                if kind == "Header":
                    value = _header(scope, rule.key_header)
                    if value is not None:
                        ident = "h:" + hash_value(value)
                if not ident:  # ClientIP, or a Header key whose header is absent
                    if client_key is None:
                        client_key = self.identity.scope_key(scope)
                    ident = client_key
            charges.append(Charge(rule.key_prefix + ident, rule.limit, rule.shadow))
        return charges

    async def check(self, scope: Mapping[str, Any]) -> Decision | None:
        """Decide an HTTP request; None when no rule matched (or the store failed open)."""
        policy_set = self._policy_set
        if not policy_set.rules:
            return None
        rules = policy_set.match(scope["method"], scope["path"], scope["headers"])
        if not rules:
            return None
        charges = self.charges_for(rules, scope)
        started = self._clock()
        memo = self._memo
        if memo:
            known = self._memo_denial(rules, charges, started)
            if known is not None:
                return known
        try:
            outcomes = await self.store.acquire(charges)
        except StoreUnavailable as exc:
            return self._unavailable(rules, exc)
        if policy_set is not self._policy_set:
            started = -1  # policies changed meanwhile: remember nothing under the new ones
        return self._decide(rules, charges, outcomes, started)

    def _memo_denial(
        self, rules: Sequence[CompiledRule], charges: Sequence[Charge], now: int
    ) -> Decision | None:
        assert self._memo is not None
        for rule, charge in zip(rules, charges, strict=True):
            if rule.shadow:
                continue
            entry = self._memo.get(charge.key)
            if entry is None:
                continue
            until, remaining = entry
            if until <= now:
                del self._memo[charge.key]
                continue
            # Certainly over the limit still: deny without asking the store. Nothing is charged, as
            # with any denial, so the other rules need not be consulted either.
            if rule.counters is not None:
                rule.counters.deny.inc()
            retry_s = ceil_div(until - now, US_PER_S)
            headers = rule_headers(rule, remaining, retry_s, self.legacy_headers)
            return rejection(429, rule, retry_s, headers)
        return None

    def _decide(
        self,
        rules: Sequence[CompiledRule],
        charges: Sequence[Charge],
        outcomes: Sequence[Outcome],
        started: int,
    ) -> Decision:
        if len(rules) == 1 and outcomes[0].allowed and not rules[0].shadow:
            # The common case, kept short: one enforced rule that allows.
            rule, outcome = rules[0], outcomes[0]
            if rule.counters is not None:
                rule.counters.allow.inc()
            reset_s = ceil_div(outcome.reset_us, US_PER_S)
            return Decision(0, rule_headers(rule, outcome.remaining, reset_s, self.legacy_headers))
        denied_by: CompiledRule | None = None
        retry_us = 0
        for rule, outcome in zip(rules, outcomes, strict=True):
            if not outcome.allowed and not rule.shadow:
                if denied_by is None:
                    denied_by = rule
                retry_us = max(retry_us, outcome.retry_after_us)
        policy_items: list[str] = []
        limit_items: list[str] = []
        tightest: tuple[CompiledRule, int, int] | None = None
        for rule, charge, outcome in zip(rules, charges, outcomes, strict=True):
            counters = rule.counters
            if rule.shadow:
                if not outcome.allowed:
                    if counters is not None:
                        counters.shadow_deny.inc()
                    self._log_shadow_deny(rule, charge)
                elif denied_by is None and counters is not None:
                    counters.allow.inc()
                continue  # shadow rules are not advertised: they are not enforced
            if not outcome.allowed:
                if counters is not None:
                    counters.deny.inc()
                # The draft wants t and Retry-After to name the same instant on a 429.
                reset_s = ceil_div(outcome.retry_after_us, US_PER_S)
                if self._memo is not None and started >= 0:
                    self._remember(charge.key, started + outcome.retry_after_us, outcome.remaining)
            else:
                if denied_by is None and counters is not None:
                    counters.allow.inc()
                reset_s = ceil_div(outcome.reset_us, US_PER_S)
            policy_items.append(rule.policy_item)
            limit_items.append(limit_item(rule, outcome.remaining, reset_s))
            if tightest is None or outcome.remaining < tightest[1]:
                tightest = (rule, outcome.remaining, reset_s)
        headers = rules_headers(policy_items, limit_items, tightest, self.legacy_headers)
        if denied_by is None:
            return Decision(0, headers)
        return rejection(429, denied_by, ceil_div(retry_us, US_PER_S), headers)

    def _unavailable(self, rules: Sequence[CompiledRule], exc: StoreUnavailable) -> Decision | None:
        self.metrics.backend_errors.inc()
        closed = next((r for r in rules if r.fail_closed and not r.shadow), None)
        self._log.log(
            logging.WARNING,
            "rate-limit store unavailable (%s): failing %s",
            exc,
            "closed" if closed is not None else "open",
            topic="store-unavailable",
        )
        if closed is None:
            return None
        return rejection(503, closed, max(1, int(ceil_div(exc.retry_after_s, 1.0))), [])

    def _remember(self, key: str, until: int, remaining: int) -> None:
        memo = self._memo
        assert memo is not None
        if len(memo) >= self._memo_size:
            now = self._clock()
            for stale in [k for k, (u, _) in memo.items() if u <= now]:
                del memo[stale]
            if len(memo) >= self._memo_size:
                memo.clear()
        memo[key] = (until, remaining)

    def _log_shadow_deny(self, rule: CompiledRule, charge: Charge) -> None:
        self._log.log(
            logging.INFO,
            "shadow_deny: policy %s rule %s would have rejected key %s",
            rule.policy,
            rule.name,
            charge.key,
            topic=f"shadow:{rule.policy}/{rule.name}",
            extra={"event": "shadow_deny", "policy": rule.policy, "rule": rule.name},
        )


def _header_lines(scope: Mapping[str, Any], name: bytes) -> list[bytes]:
    return [value for key, value in scope["headers"] if key == name]


def _header(scope: Mapping[str, Any], name: bytes | None) -> bytes | None:
    lines = _header_lines(scope, name) if name is not None else []
    if not lines:
        return None
    return b",".join(lines)
