"""Compilation of policies: matchers (methods, paths, headers), labels, keys, GCRA numbers."""

from __future__ import annotations

import pytest

from floodgate.ratelimit import GcraLimit, compile_policies
from tests.unit.ratelimit.builders import make_policy, rule_doc


def names(rules: list) -> list[str]:  # type: ignore[type-arg]
    return [r.name for r in rules]


def compile_rules(*rules: dict[str, object]):  # type: ignore[no-untyped-def]
    return compile_policies([make_policy("p", *rules)], generation=1)


def test_methods_and_path_prefix_are_element_wise() -> None:
    ps = compile_rules(
        rule_doc(
            "reads", match={"methods": ["GET"], "path": {"type": "PathPrefix", "value": "/api/"}}
        )
    )
    assert names(ps.match("GET", "/api", [])) == ["reads"]
    assert names(ps.match("GET", "/api/x/y", [])) == ["reads"]
    assert names(ps.match("GET", "/apix", [])) == []
    assert names(ps.match("POST", "/api/x", [])) == []


def test_exact_and_regex_paths() -> None:
    ps = compile_rules(
        rule_doc("exact", match={"path": {"type": "Exact", "value": "/login"}}),
        rule_doc("regex", match={"path": {"type": "RegularExpression", "value": r"/users/\d+"}}),
    )
    assert names(ps.match("POST", "/login", [])) == ["exact"]
    assert names(ps.match("POST", "/login/x", [])) == []
    assert names(ps.match("GET", "/users/42", [])) == ["regex"]
    assert names(ps.match("GET", "/users/42/x", [])) == []  # the whole path must match


def test_no_match_block_matches_everything() -> None:
    ps = compile_rules(rule_doc("all"))
    assert names(ps.match("DELETE", "/anything", [])) == ["all"]


def test_header_conditions_must_all_hold() -> None:
    ps = compile_rules(
        rule_doc("plain"),
        rule_doc(
            "beta",
            match={
                "headers": [
                    {"name": "X-Tier", "value": "beta"},
                    {"name": "User-Agent", "type": "RegularExpression", "value": "curl/.*"},
                ]
            },
        ),
    )
    beta = [(b"x-tier", b"beta"), (b"user-agent", b"curl/8.0")]
    assert names(ps.match("GET", "/", beta)) == ["plain", "beta"]
    assert names(ps.match("GET", "/", beta[:1])) == ["plain"]
    assert names(ps.match("GET", "/", [(b"x-tier", b"gamma"), beta[1]])) == ["plain"]


def test_match_results_are_cached_per_method_and_path() -> None:
    ps = compile_rules(rule_doc("a", match={"methods": ["GET"]}))
    first = ps.match("GET", "/x", [])
    assert ps.match("GET", "/x", []) == first
    assert ("GET", "/x") in ps._cache


def test_labels_are_rule_names_unless_they_collide() -> None:
    ps = compile_policies(
        [
            make_policy("a", rule_doc("reads"), rule_doc("only-a")),
            make_policy("b", rule_doc("reads")),
        ],
        generation=3,
    )
    assert [r.label for r in ps.rules] == ["shop/a/reads", "only-a", "shop/b/reads"]
    assert ps.rules[1].policy_item == '"only-a";q=5;w=10'
    assert ps.generation == 3


def test_duplicate_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="shop/a is defined more than once"):
        compile_policies([make_policy("a"), make_policy("a")], generation=1)


def test_keys_share_one_hash_tag() -> None:
    ps = compile_policies(
        [make_policy("a", rule_doc("x"), rule_doc("y", key="Global"))], generation=1, key_tag="fg"
    )
    assert [r.key_prefix for r in ps.rules] == ["{fg}:rl:shop/a:x:", "{fg}:rl:shop/a:y:"]


def test_gcra_numbers() -> None:
    ps = compile_rules(rule_doc(limit={"requests": 3, "period": "10s"}, burst=2, cost=2))
    assert ps.rules[0].limit == GcraLimit(interval_us=3_333_334, capacity=5, cost=2)
    assert ps.rules[0].limit.tolerance_us == 5 * 3_333_334


def test_shadow_and_failure_mode_flags() -> None:
    ps = compile_policies(
        [make_policy("s", mode="Shadow"), make_policy("c", failure_mode="Closed")], generation=1
    )
    assert [(r.shadow, r.fail_closed) for r in ps.rules] == [(True, False), (False, True)]
