"""The RateLimitPolicy model: periods, validation messages, aliases, CRD-friendly schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from floodgate.ratelimit import RateLimitPolicy, parse_period
from floodgate.ratelimit.model import Rule
from tests.unit.ratelimit.builders import policy_doc, rule_doc


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1),
        ("10s", 10),
        ("1m", 60),
        ("90m", 5400),
        ("1h", 3600),
        ("1d", 86400),
        ("366d", 31622400),
    ],
)
def test_period_parses(text: str, seconds: int) -> None:
    assert parse_period(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "0s", "1", "s", "1.5s", "1w", "1 m", "-1s", "10ms", "01s", "367d"]
)
def test_period_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="period"):
        parse_period(text)


def errors_of(doc: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        RateLimitPolicy.model_validate(doc)
    return [(".".join(str(p) for p in e["loc"]), str(e["msg"])) for e in caught.value.errors()]


def test_valid_document_round_trips_with_camel_case() -> None:
    policy = RateLimitPolicy.model_validate(policy_doc(failure_mode="Closed"))
    dumped = policy.model_dump(by_alias=True)
    assert dumped["apiVersion"] == "floodgate.dev/v1alpha1"
    assert dumped["spec"]["failureMode"] == "Closed"
    assert RateLimitPolicy.model_validate(dumped) == policy
    assert policy.qualified_name == "shop/reads"


def test_snake_case_names_are_rejected() -> None:
    doc = policy_doc()
    doc["spec"]["failure_mode"] = doc["spec"].pop("failureMode")
    assert ("spec.failure_mode", "Extra inputs are not permitted") in errors_of(doc)


def test_unknown_fields_are_rejected_everywhere() -> None:
    doc = policy_doc("reads", rule_doc(limit={"requests": 5, "period": "1m", "per": "x"}))
    assert errors_of(doc) == [("spec.rules.0.limit.per", "Extra inputs are not permitted")]


def test_duplicate_rule_names_name_both_rules() -> None:
    doc = policy_doc("reads", rule_doc("a"), rule_doc("b"), rule_doc("a"))
    [(loc, msg)] = errors_of(doc)
    assert loc == "spec.rules"
    assert "'a'" in msg
    assert "rules[0]" in msg
    assert "rules[2]" in msg


def test_bad_period_is_reported_on_the_period_field() -> None:
    [(loc, msg)] = errors_of(policy_doc("reads", rule_doc(limit={"requests": 1, "period": "5x"})))
    assert loc == "spec.rules.0.limit.period"
    assert "'5x' is not a period" in msg


def test_regex_must_compile() -> None:
    doc = policy_doc(
        "reads", rule_doc(match={"path": {"type": "RegularExpression", "value": "/a(["}})
    )
    [(loc, msg)] = errors_of(doc)
    assert loc == "spec.rules.0.match.path"
    assert "invalid regular expression" in msg


def test_prefix_must_start_with_slash() -> None:
    doc = policy_doc("reads", rule_doc(match={"path": {"type": "PathPrefix", "value": "api"}}))
    [(_, msg)] = errors_of(doc)
    assert "must start with '/'" in msg


def test_negative_burst_and_zero_requests() -> None:
    doc = policy_doc("reads", rule_doc(burst=-1, limit={"requests": 0, "period": "1s"}))
    locs = {loc for loc, _ in errors_of(doc)}
    assert locs == {"spec.rules.0.burst", "spec.rules.0.limit.requests"}


def test_cost_larger_than_capacity_can_never_pass() -> None:
    doc = policy_doc("reads", rule_doc(cost=7, burst=1, limit={"requests": 5, "period": "1s"}))
    [(loc, msg)] = errors_of(doc)
    assert loc == "spec.rules.0"
    assert "cost 7 can never be paid" in msg


@pytest.mark.parametrize("key", ["ClientIP", "Global", "Header:X-Api-Key"])
def test_keys_accepted(key: str) -> None:
    rule = Rule.model_validate(rule_doc(key=key))
    assert rule.key == key


@pytest.mark.parametrize("key", ["clientip", "Header:", "Header:a b", "Cookie:x", ""])
def test_keys_rejected(key: str) -> None:
    [(loc, _)] = errors_of(policy_doc("reads", rule_doc(key=key)))
    assert loc == "spec.rules.0.key"


def test_wrong_kind_and_api_version() -> None:
    doc = policy_doc()
    doc["kind"] = "Policy"
    doc["apiVersion"] = "v1"
    assert {loc for loc, _ in errors_of(doc)} == {"kind", "apiVersion"}


def test_rule_names_are_dns_labels() -> None:
    [(loc, _)] = errors_of(policy_doc("reads", rule_doc("Per Client")))
    assert loc == "spec.rules.0.name"


def test_every_schema_property_has_a_description() -> None:
    schema = RateLimitPolicy.model_json_schema(by_alias=True)
    text = json.dumps(schema)
    assert '"failureMode"' in text
    assert '"apiVersion"' in text
    defs = schema.get("$defs", {})
    missing = []
    for owner, node in [("RateLimitPolicy", schema), *defs.items()]:
        for prop, spec in node.get("properties", {}).items():
            if "description" not in spec:
                missing.append(f"{owner}.{prop}")
    assert missing == []


def test_schema_refs_are_only_local_definitions() -> None:
    # The CRD generator inlines $defs; recursion or remote refs could not be inlined.
    schema = RateLimitPolicy.model_json_schema(by_alias=True)
    defs = set(schema.get("$defs", {}))
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    assert refs
    assert all(r.startswith("#/$defs/") and r.removeprefix("#/$defs/") in defs for r in refs)
    for name, node in schema.get("$defs", {}).items():
        assert f'"#/$defs/{name}"' not in json.dumps(node), f"{name} is recursive"


def test_period_pattern_is_in_the_schema() -> None:
    schema = RateLimitPolicy.model_json_schema(by_alias=True)
    limit = schema["$defs"]["Limit"]["properties"]["period"]
    assert limit["pattern"] == "^[1-9][0-9]{0,8}(s|m|h|d)$"


def test_every_field_is_in_the_policy_reference() -> None:
    reference = (Path(__file__).parents[3] / "docs" / "policy-reference.md").read_text()
    schema = RateLimitPolicy.model_json_schema(by_alias=True)
    fields = set(schema["properties"])
    for node in schema["$defs"].values():
        fields |= set(node.get("properties", {}))
    # A field counts as documented when it appears as a backticked name or path segment.
    undocumented = sorted(
        f for f in fields if not re.search(rf"[`.]{re.escape(f)}[`.\[]", reference)
    )
    assert undocumented == []
