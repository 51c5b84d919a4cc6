"""Compilation of RateLimitPolicy documents into one immutable, pre-matched `PolicySet`."""

from __future__ import annotations

import re
from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from floodgate.ratelimit.gcra import GcraLimit
from floodgate.ratelimit.headers import policy_item, sf_string
from floodgate.ratelimit.metrics import DecisionCounters, RateLimitMetrics
from floodgate.ratelimit.model import RateLimitPolicy, Rule

KeyKind = Literal["ClientIP", "Header", "Global"]
_MATCH_CACHE_SIZE = 8192


@dataclass(frozen=True, slots=True)
class HeaderCondition:
    name: bytes  # lower-case, as in ASGI scopes
    exact: str | None
    regex: re.Pattern[str] | None

    def holds(self, value: str | None) -> bool:
        if value is None:
            return False
        if self.regex is not None:
            return self.regex.fullmatch(value) is not None
        return value == self.exact


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    """A rule ready for the hot path: matchers, key recipe, GCRA numbers and header text."""

    policy: str  # namespace/name
    name: str
    label: str  # the quota policy identifier in RateLimit-Policy / RateLimit
    methods: frozenset[str] | None
    path_type: Literal["Any", "Exact", "PathPrefix", "RegularExpression"]
    path_value: str
    path_regex: re.Pattern[str] | None
    headers: tuple[HeaderCondition, ...]
    key_kind: KeyKind
    key_header: bytes | None
    key_prefix: str
    limit: GcraLimit
    requests: int
    period_s: int
    shadow: bool
    fail_closed: bool
    policy_item: str  # its RateLimit-Policy member
    quoted_label: str  # the label as a structured-field String, ready for RateLimit members
    counters: DecisionCounters | None = None

    def matches_path(self, path: str) -> bool:
        kind = self.path_type
        if kind == "Any":
            return True
        if kind == "PathPrefix":
            prefix = self.path_value
            return path.startswith(prefix) and (
                len(path) == len(prefix) or path[len(prefix)] == "/"
            )
        if kind == "Exact":
            return path == self.path_value
        assert self.path_regex is not None
        return self.path_regex.fullmatch(path) is not None

    def matches_headers(self, headers: dict[bytes, str]) -> bool:
        return all(cond.holds(headers.get(cond.name)) for cond in self.headers)


@dataclass(frozen=True, slots=True)
class _Candidates:
    always: tuple[CompiledRule, ...]  # method and path match, no header condition
    if_headers: tuple[CompiledRule, ...]  # method and path match, header conditions to check


@dataclass(eq=False)
class PolicySet:
    """All applied policies, compiled; swapped whole (never mutated) when policies change."""

    generation: int
    rules: tuple[CompiledRule, ...]
    policies: tuple[RateLimitPolicy, ...] = ()
    origin: str = ""
    _cache: dict[tuple[str, str], _Candidates] = field(default_factory=dict, repr=False)

    def match(
        self, method: str, path: str, raw_headers: Sequence[tuple[bytes, bytes]]
    ) -> list[CompiledRule]:
        """The rules a request matches, in policy order (each rule at most once)."""
        candidates = self._cache.get((method, path))
        if candidates is None:
            candidates = self._candidates(method, path)
        if not candidates.if_headers:
            return list(candidates.always)
        headers: dict[bytes, str] = {}
        for name, value in raw_headers:
            text = value.decode("latin-1")
            headers[name] = f"{headers[name]},{text}" if name in headers else text
        extra = [rule for rule in candidates.if_headers if rule.matches_headers(headers)]
        if not extra:
            return list(candidates.always)
        # Keep policy order: merge by position in self.rules.
        chosen = set(candidates.always) | set(extra)
        return [rule for rule in self.rules if rule in chosen]

    def _candidates(self, method: str, path: str) -> _Candidates:
        always: list[CompiledRule] = []
        if_headers: list[CompiledRule] = []
        for rule in self.rules:
            if rule.methods is not None and method not in rule.methods:
                continue
            if not rule.matches_path(path):
                continue
            (if_headers if rule.headers else always).append(rule)
        found = _Candidates(tuple(always), tuple(if_headers))
        if len(self._cache) >= _MATCH_CACHE_SIZE:
            self._cache.clear()
        self._cache[(method, path)] = found
        return found


def _compile_rule(
    policy: RateLimitPolicy,
    rule: Rule,
    *,
    label: str,
    key_tag: str,
    metrics: RateLimitMetrics | None,
) -> CompiledRule:
    match = rule.match
    path = match.path
    path_type: Literal["Any", "Exact", "PathPrefix", "RegularExpression"] = "Any"
    path_value = ""
    path_regex = None
    if path is not None:
        path_type = path.type
        path_value = path.value
        if path.type == "RegularExpression":
            path_regex = re.compile(path.value)
        elif path.type == "PathPrefix":
            # Element-wise prefix, trailing slash ignored (Gateway API): /api/ matches /api too.
            path_value = path.value.rstrip("/")
            if not path_value:
                path_type = "Any"
    headers = tuple(
        HeaderCondition(
            name=h.name.lower().encode("latin-1"),
            exact=h.value if h.type == "Exact" else None,
            regex=re.compile(h.value) if h.type == "RegularExpression" else None,
        )
        for h in match.headers
    )
    key_kind: KeyKind
    key_header = None
    if rule.key == "ClientIP":
        key_kind = "ClientIP"
    elif rule.key == "Global":
        key_kind = "Global"
    else:
        key_kind = "Header"
        key_header = rule.key.removeprefix("Header:").lower().encode("latin-1")
    period_s = rule.limit.period_seconds
    qualified = policy.qualified_name
    return CompiledRule(
        policy=qualified,
        name=rule.name,
        label=label,
        methods=frozenset(match.methods) if match.methods else None,
        path_type=path_type,
        path_value=path_value,
        path_regex=path_regex,
        headers=headers,
        key_kind=key_kind,
        key_header=key_header,
        # One hash tag for every key: a batch mixing rules and clients stays in one Cluster slot.
        key_prefix=f"{{{key_tag}}}:rl:{qualified}:{rule.name}:",
        limit=GcraLimit.from_rate(
            requests=rule.limit.requests, period_s=period_s, burst=rule.burst, cost=rule.cost
        ),
        requests=rule.limit.requests,
        period_s=period_s,
        shadow=policy.spec.mode == "Shadow",
        fail_closed=policy.spec.failure_mode == "Closed",
        policy_item=policy_item(label, rule.limit.requests, period_s),
        quoted_label=sf_string(label),
        counters=metrics.for_rule(qualified, rule.name) if metrics is not None else None,
    )


def compile_policies(
    policies: Iterable[RateLimitPolicy],
    *,
    generation: int,
    origin: str = "",
    key_tag: str = "floodgate",
    metrics: RateLimitMetrics | None = None,
) -> PolicySet:
    """Compile validated policies; raises ValueError when two share a namespace/name."""
    ordered = tuple(policies)
    seen: set[str] = set()
    for policy in ordered:
        if policy.qualified_name in seen:
            raise ValueError(f"policy {policy.qualified_name} is defined more than once")
        seen.add(policy.qualified_name)
    # Rule names label the quota policies in response headers; qualify only the ones that collide.
    names = Tally(rule.name for policy in ordered for rule in policy.spec.rules)
    rules = tuple(
        _compile_rule(
            policy,
            rule,
            label=rule.name if names[rule.name] == 1 else f"{policy.qualified_name}/{rule.name}",
            key_tag=key_tag,
            metrics=metrics,
        )
        for policy in ordered
        for rule in policy.spec.rules
    )
    return PolicySet(generation=generation, rules=rules, policies=ordered, origin=origin)


EMPTY_POLICY_SET = PolicySet(generation=0, rules=())
