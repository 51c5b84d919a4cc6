"""The RateLimitPolicy document (floodgate.dev/v1alpha1): single source of file format and CRD.

Every field carries a `description` (it becomes `kubectl explain` text) and the schema stays
CRD-friendly: no recursion, enums as string literals, camelCase aliases matching the custom
resource.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

API_VERSION = "floodgate.dev/v1alpha1"
KIND = "RateLimitPolicy"

_PERIOD_RE = re.compile(r"^([1-9][0-9]{0,8})(s|m|h|d)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_PERIOD_SECONDS = 366 * 86400
PERIOD_PATTERN = r"^[1-9][0-9]{0,8}(s|m|h|d)$"
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# RFC 9110 token characters: what a header field name may be made of.
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
_HEADER_NAME_RE = re.compile(_HEADER_NAME)
KEY_PATTERN = r"^(ClientIP|Global|Header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$"
# Keeps every GCRA quantity (now + capacity x interval, in microseconds) an exact integer in a Lua
# double.
MAX_CAPACITY = 1_000_000


def parse_period(value: str) -> int:
    """`'10s'`, `'1m'`, `'1h'`, `'1d'` → seconds; ValueError with a message meant for people."""
    found = _PERIOD_RE.match(value)
    if found is None:
        raise ValueError(
            f"{value!r} is not a period: use a whole number followed by s, m, h or d "
            "(e.g. 1s, 10s, 1m, 1h, 1d)"
        )
    seconds = int(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    if seconds > MAX_PERIOD_SECONDS:
        raise ValueError(f"{value!r} is longer than the maximum period of 366d")
    return seconds


def _check_period(value: str) -> str:
    parse_period(value)
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


Period = Annotated[
    str,
    AfterValidator(_check_period),
    Field(json_schema_extra={"pattern": PERIOD_PATTERN}),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
    )


class PathMatch(_Model):
    """Which request paths a rule applies to (same vocabulary as Gateway API HTTPRoute)."""

    type: Literal["Exact", "PathPrefix", "RegularExpression"] = Field(
        default="PathPrefix",
        description=(
            "How `value` is compared with the request path. Exact: the whole path is equal. "
            "PathPrefix: element-wise prefix, so /api matches /api and /api/x but not /apix. "
            "RegularExpression: the whole path matches the (Python `re`) expression."
        ),
    )
    value: str = Field(
        default="/",
        min_length=1,
        max_length=1024,
        description="The path (Exact, PathPrefix; must start with /) or the regular expression.",
    )

    @model_validator(mode="after")
    def _value_fits_type(self) -> PathMatch:
        if self.type == "RegularExpression":
            _check_regex(self.value)
        elif not self.value.startswith("/"):
            raise ValueError(f"value must start with '/' for type {self.type}; got {self.value!r}")
        return self


class HeaderMatch(_Model):
    """A request header that must be present with a given value for a rule to apply."""

    name: str = Field(
        min_length=1,
        max_length=256,
        pattern=_HEADER_NAME,
        description="Header field name, compared case-insensitively.",
    )
    type: Literal["Exact", "RegularExpression"] = Field(
        default="Exact",
        description="Exact: the value is equal. RegularExpression: the whole value matches.",
    )
    value: str = Field(
        max_length=4096,
        description="The expected value, or the regular expression for type RegularExpression.",
    )

    @model_validator(mode="after")
    def _regex_compiles(self) -> HeaderMatch:
        if self.type == "RegularExpression":
            _check_regex(self.value)
        return self


HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"]


class RequestMatch(_Model):
    """Which requests a rule applies to: every condition given must hold."""

    methods: list[HttpMethod] = Field(
        default_factory=list,
        max_length=9,
        description="HTTP methods the rule applies to; empty or absent means every method.",
    )
    path: PathMatch | None = Field(
        default=None,
        description="Path condition; absent means every path.",
    )
    headers: list[HeaderMatch] = Field(
        default_factory=list,
        max_length=16,
        description="Header conditions, all of which must hold; empty means no header condition.",
    )


class Limit(_Model):
    """The sustained rate: `requests` quota units per `period`."""

    requests: int = Field(
        ge=1,
        le=MAX_CAPACITY,
        description=(
            "Quota units per period. A fresh key may spend all of them at once; they refill "
            "continuously at requests/period (GCRA)."
        ),
    )
    period: Period = Field(
        description="Length of the period: a whole number and a unit s, m, h or d (10s, 1m, 1d).",
    )

    @property
    def period_seconds(self) -> int:
        return parse_period(self.period)


class Rule(_Model):
    """One limit: the requests it applies to, how clients are told apart, and the allowance."""

    name: str = Field(
        min_length=1,
        max_length=63,
        pattern=_DNS_LABEL,
        description=(
            "Rule name, unique in the policy (a DNS label). It names the quota policy in the "
            "RateLimit-Policy and RateLimit response fields and in metrics."
        ),
    )
    match: RequestMatch = Field(
        default_factory=RequestMatch,
        description="Which requests the rule applies to; absent means every request.",
    )
    key: str = Field(
        default="ClientIP",
        max_length=263,
        json_schema_extra={"pattern": KEY_PATTERN},
        description=(
            "What a separate allowance is kept for. ClientIP: the client address (X-Forwarded-For "
            "is used only from trusted proxies; IPv6 clients are grouped by /64). Header:<name>: "
            "the value of that request header, hashed before it is stored (requests without the "
            "header fall back to ClientIP). Global: one allowance shared by every client."
        ),
    )
    limit: Limit = Field(description="The sustained rate, e.g. {requests: 100, period: 1m}.")
    burst: int = Field(
        default=0,
        ge=0,
        le=MAX_CAPACITY,
        description=(
            "Extra quota units a client may spend at once on top of `limit.requests`: a fresh key "
            "allows requests + burst immediately, then refills at requests/period."
        ),
    )
    cost: int = Field(
        default=1,
        ge=1,
        le=MAX_CAPACITY,
        description="Quota units each matching request spends (at most requests + burst).",
    )

    @field_validator("key")
    @classmethod
    def _key_is_known(cls, value: str) -> str:
        if value in ("ClientIP", "Global"):
            return value
        if value.startswith("Header:"):
            header = value.removeprefix("Header:")
            if _HEADER_NAME_RE.match(header):
                return value
            raise ValueError(f"{value!r}: Header: must be followed by a header field name")
        raise ValueError(f"{value!r} is not a key: use ClientIP, Global or Header:<name>")

    @model_validator(mode="after")
    def _cost_fits(self) -> Rule:
        capacity = self.limit.requests + self.burst
        if capacity > MAX_CAPACITY:
            raise ValueError(f"limit.requests + burst must be at most {MAX_CAPACITY}")
        if self.cost > capacity:
            raise ValueError(
                f"cost {self.cost} can never be paid: it exceeds requests + burst ({capacity})"
            )
        return self

    @property
    def capacity(self) -> int:
        """Quota units a fresh key may spend at once."""
        return self.limit.requests + self.burst


class PolicySpec(_Model):
    """What the policy does."""

    mode: Literal["Enforce", "Shadow"] = Field(
        default="Enforce",
        description=(
            "Enforce rejects requests over a limit with 429. Shadow never rejects: it counts, "
            "reports (metric decision=shadow_deny) and logs what it would have rejected."
        ),
    )
    failure_mode: Literal["Open", "Closed"] = Field(
        default="Open",
        description=(
            "What happens when the counter store is unreachable. Open lets requests through; "
            "Closed rejects them with 503 and Retry-After."
        ),
    )
    rules: list[Rule] = Field(
        min_length=1,
        max_length=64,
        description="The limits; a request is charged once against every rule it matches.",
    )

    @field_validator("rules")
    @classmethod
    def _rule_names_unique(cls, rules: list[Rule]) -> list[Rule]:
        seen: dict[str, int] = {}
        for index, rule in enumerate(rules):
            if rule.name in seen:
                raise ValueError(
                    f"rule name {rule.name!r} is used twice: "
                    f"rules[{seen[rule.name]}] and rules[{index}]"
                )
            seen[rule.name] = index
        return rules


class ObjectMeta(_Model):
    """The subset of Kubernetes object metadata a policy file may carry."""

    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=_DNS_SUBDOMAIN,
        description="Policy name (a DNS subdomain), unique in its namespace.",
    )
    namespace: str = Field(
        default="default",
        min_length=1,
        max_length=63,
        pattern=_DNS_LABEL,
        description="Namespace of the policy; `default` when absent.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Kubernetes labels (ignored).")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Kubernetes annotations (ignored)."
    )


class RateLimitPolicy(_Model):
    """A set of rate-limit rules, as a Kubernetes custom resource or a document of a policy file."""

    api_version: Literal["floodgate.dev/v1alpha1"] = Field(
        description="Must be floodgate.dev/v1alpha1.",
    )
    kind: Literal["RateLimitPolicy"] = Field(description="Must be RateLimitPolicy.")
    metadata: ObjectMeta = Field(description="Name and namespace of the policy.")
    spec: PolicySpec = Field(description="The rules and how they are applied.")

    @property
    def qualified_name(self) -> str:
        """`namespace/name`, the policy's label in metrics and logs."""
        return f"{self.metadata.namespace}/{self.metadata.name}"
