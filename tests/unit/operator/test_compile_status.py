"""Operator logic without a cluster: CR → policy compilation, status from acknowledgements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from floodgate.operator.compile import InvalidPolicy, policy_from_resource, policy_set_digest
from floodgate.operator.status import Rollout, compute_status, rollout


def spec(**rule: Any) -> dict[str, Any]:
    base = {"name": "reads", "limit": {"requests": 10, "period": "1m"}}
    return {"rules": [{**base, **rule}]}


def test_valid_resource_becomes_a_policy() -> None:
    policy = policy_from_resource(name="p", namespace="shop", spec=spec(burst=5))
    assert policy.qualified_name == "shop/p"
    assert policy.spec.rules[0].capacity == 15


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"match": {"path": {"type": "RegularExpression", "value": "("}}}, "regular expression"),
        ({"limit": {"requests": 10, "period": "1y"}}, "period"),
        ({"key": "Cookie"}, "not a key"),
        ({"cost": 100}, "can never be paid"),
    ],
)
def test_invalid_resource_says_why(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPolicy, match=message):
        policy_from_resource(name="p", namespace="shop", spec=spec(**rule))


def test_digest_ignores_order_and_sees_changes() -> None:
    a = policy_from_resource(name="a", namespace="x", spec=spec())
    b = policy_from_resource(name="b", namespace="x", spec=spec())
    b2 = policy_from_resource(name="b", namespace="x", spec=spec(burst=1))
    assert policy_set_digest([a, b]) == policy_set_digest([b, a])
    assert policy_set_digest([a, b]) != policy_set_digest([a, b2])
    assert policy_set_digest([]) != policy_set_digest([a])


def test_rollout_counts_a_pod_once_all_its_processes_applied() -> None:
    acks = {"pod-a:1": 7, "pod-a:2": 7, "pod-b:1": 7, "pod-b:2": 6, "pod-c:9": 7}
    assert rollout(acks, 7) == Rollout(generation=7, ready_pods=3, applied_pods=2)
    assert rollout({}, 7) == Rollout(generation=7, ready_pods=0, applied_pods=0)


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_programmed_when_every_pod_applied() -> None:
    status = compute_status(
        observed_generation=3,
        error=None,
        rollout_state=Rollout(5, 2, 2),
        previous_conditions=[],
        now=NOW,
    )
    assert status["appliedPods"] == 2
    assert status["readyPods"] == 2
    assert status["policySetGeneration"] == 5
    conditions = _conditions(status)
    assert conditions["Accepted"]["status"] == "True"
    assert conditions["Programmed"] == {
        "type": "Programmed",
        "status": "True",
        "observedGeneration": 3,
        "lastTransitionTime": "2026-11-24T12:00:00Z",
        "reason": "Programmed",
        "message": "applied by 2/2 pods",
    }


def test_pending_and_no_pods() -> None:
    pending = _conditions(
        compute_status(
            observed_generation=1,
            error=None,
            rollout_state=Rollout(5, 3, 1),
            previous_conditions=[],
            now=NOW,
        )
    )["Programmed"]
    assert (pending["status"], pending["reason"], pending["message"]) == (
        "False",
        "Pending",
        "applied by 1/3 pods",
    )
    nobody = _conditions(
        compute_status(
            observed_generation=1,
            error=None,
            rollout_state=Rollout(5, 0, 0),
            previous_conditions=[],
            now=NOW,
        )
    )["Programmed"]
    assert nobody["reason"] == "NoPods"


def test_invalid_policy_is_not_accepted_nor_programmed() -> None:
    status = compute_status(
        observed_generation=2,
        error="rules[0].key: bad",
        rollout_state=None,
        previous_conditions=[],
        now=NOW,
    )
    conditions = _conditions(status)
    assert conditions["Accepted"]["status"] == "False"
    assert conditions["Accepted"]["message"] == "rules[0].key: bad"
    assert conditions["Programmed"]["reason"] == "NotAccepted"
    assert "appliedPods" not in status


def test_transition_time_changes_only_with_status() -> None:
    first = compute_status(
        observed_generation=1,
        error=None,
        rollout_state=Rollout(1, 2, 1),
        previous_conditions=[],
        now=NOW,
    )
    later = NOW + timedelta(minutes=5)
    same = compute_status(
        observed_generation=1,
        error=None,
        rollout_state=Rollout(1, 2, 1),
        previous_conditions=first["conditions"],
        now=later,
    )
    assert _conditions(same)["Programmed"]["lastTransitionTime"] == "2026-11-24T12:00:00Z"
    flipped = compute_status(
        observed_generation=1,
        error=None,
        rollout_state=Rollout(1, 2, 2),
        previous_conditions=same["conditions"],
        now=later,
    )
    assert _conditions(flipped)["Programmed"]["lastTransitionTime"] == "2026-11-24T12:05:00Z"
    assert _conditions(flipped)["Accepted"]["lastTransitionTime"] == "2026-11-24T12:00:00Z"
