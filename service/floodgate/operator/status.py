"""Status of a RateLimitPolicy from the pods' acknowledgements: pure, so it is unit-tested alone.

kopf has no built-in conditions (kopf#796); these follow metav1.Condition: type, status,
observedGeneration, lastTransitionTime (changed only when status changes), reason, message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Rollout:
    """How far one policy-set generation has reached, per pod."""

    generation: int
    ready_pods: int
    applied_pods: int


def rollout(acks: Mapping[str, int], generation: int) -> Rollout:
    """Acks are `<pod>:<process>` → applied generation; a pod counts once all its processes did."""
    by_pod: dict[str, list[int]] = {}
    for member, applied in acks.items():
        pod = member.rsplit(":", 1)[0]
        by_pod.setdefault(pod, []).append(applied)
    applied = sum(1 for gens in by_pod.values() if all(g == generation for g in gens))
    return Rollout(generation=generation, ready_pods=len(by_pod), applied_pods=applied)


def _condition(
    previous: Sequence[Mapping[str, Any]],
    *,
    type_: str,
    status: bool,
    reason: str,
    message: str,
    observed_generation: int,
    now: datetime,
) -> dict[str, Any]:
    value = "True" if status else "False"
    before = next((c for c in previous if c.get("type") == type_), None)
    since = now.isoformat().replace("+00:00", "Z")
    if before is not None and before.get("status") == value and before.get("lastTransitionTime"):
        since = str(before["lastTransitionTime"])
    return {
        "type": type_,
        "status": value,
        "observedGeneration": observed_generation,
        "lastTransitionTime": since,
        "reason": reason,
        "message": message,
    }


def compute_status(
    *,
    observed_generation: int,
    error: str | None,
    rollout_state: Rollout | None,
    previous_conditions: Sequence[Mapping[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The whole `status` of one CR. `error` is why it was not accepted, None when it was."""

    def condition(type_: str, status: bool, reason: str, message: str) -> dict[str, Any]:
        return _condition(
            previous_conditions,
            type_=type_,
            status=status,
            reason=reason,
            message=message,
            observed_generation=observed_generation,
            now=now,
        )

    if error is not None:
        return {
            "observedGeneration": observed_generation,
            "conditions": [
                condition("Accepted", False, "Invalid", error),
                condition("Programmed", False, "NotAccepted", "not valid, so no pod applies it"),
            ],
        }
    state = rollout_state or Rollout(generation=0, ready_pods=0, applied_pods=0)
    progress = f"applied by {state.applied_pods}/{state.ready_pods} pods"
    if state.ready_pods == 0:
        programmed = condition(
            "Programmed", False, "NoPods", "no API process reports to the shared Redis"
        )
    elif state.applied_pods == state.ready_pods:
        programmed = condition("Programmed", True, "Programmed", progress)
    else:
        programmed = condition("Programmed", False, "Pending", progress)
    return {
        "observedGeneration": observed_generation,
        "policySetGeneration": state.generation,
        "appliedPods": state.applied_pods,
        "readyPods": state.ready_pods,
        "conditions": [condition("Accepted", True, "Valid", "the policy is valid"), programmed],
    }
