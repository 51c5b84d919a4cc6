"""The Rate limits dashboard: decisions per policy and rule, store health, policy rollout."""

from __future__ import annotations

from .model import Dashboard, Panel, Query, Row
from .promql import POD_SEL, quantile, rate, sel, sum_rate

DECISIONS = "floodgate_ratelimit_decisions_total"


def dashboard() -> Dashboard:
    return Dashboard(
        uid="floodgate-ratelimit",
        title="Floodgate / Rate limits",
        description="Decisions per policy and rule, shadow denies, backend health, policy rollout.",
        rows=(
            Row(
                "Decisions",
                (
                    Panel(
                        "Decisions by policy",
                        "Rate-limit decisions per second: allow, deny (429) and shadow_deny.",
                        "reqps",
                        (
                            Query(
                                f"sum by (policy, decision) ({rate(DECISIONS)})",
                                "{{policy}} {{decision}}",
                            ),
                        ),
                    ),
                    Panel(
                        "Deny ratio by rule",
                        "Share of a rule's decisions that rejected the request (Enforce mode).",
                        "percentunit",
                        (
                            Query(
                                sum_rate(DECISIONS, "policy, rule", sel(decision="deny"))
                                + f" / ({sum_rate(DECISIONS, 'policy, rule')} > 0)",
                                "{{policy}}/{{rule}}",
                            ),
                        ),
                        max=1,
                    ),
                    Panel(
                        "Shadow denies by rule",
                        "Requests a Shadow-mode rule would have rejected (served anyway): what "
                        "switching it to Enforce would do.",
                        "reqps",
                        (
                            Query(
                                sum_rate(DECISIONS, "policy, rule", sel(decision="shadow_deny")),
                                "{{policy}}/{{rule}}",
                            ),
                        ),
                    ),
                    Panel(
                        "Allowed requests by rule",
                        "Requests each rule let through per second.",
                        "reqps",
                        (
                            Query(
                                sum_rate(DECISIONS, "policy, rule", sel(decision="allow")),
                                "{{policy}}/{{rule}}",
                            ),
                        ),
                    ),
                ),
            ),
            Row(
                "Backend and rollout",
                (
                    Panel(
                        "Counter store errors by pod",
                        "Requests whose limits could not be checked (store down or circuit open); "
                        "failureMode decides whether they were served.",
                        "reqps",
                        (
                            Query(
                                "sum by (pod) "
                                f"({rate('floodgate_ratelimit_backend_errors_total', POD_SEL)})",
                                "{{pod}}",
                            ),
                        ),
                    ),
                    Panel(
                        "Policy generation per pod",
                        "Generation of the policy set each pod applies (lowest of its workers).",
                        "short",
                        (
                            Query(
                                f"min by (pod) (floodgate_policy_generation{{{POD_SEL}}})",
                                "{{pod}}",
                            ),
                        ),
                    ),
                    Panel(
                        "Pods behind the newest policy generation",
                        "Pods not yet on the highest generation seen (0 once a rollout converged).",
                        "short",
                        (
                            Query(
                                f"count(min by (pod) (floodgate_policy_generation{{{POD_SEL}}})"
                                f" < scalar(max(floodgate_policy_generation{{{POD_SEL}}})))"
                                " or vector(0)",
                                "pods behind",
                            ),
                        ),
                    ),
                    Panel(
                        "Counter store latency (p50 / p99)",
                        "Round trips to the shared Redis holding the counters, seen by the client.",
                        "s",
                        tuple(
                            Query(
                                quantile(
                                    q,
                                    "floodgate_redis_command_duration_seconds",
                                    sel(role="shared"),
                                ),
                                f"p{int(q * 100)}",
                            )
                            for q in (0.5, 0.99)
                        ),
                        exemplars=True,
                    ),
                ),
            ),
        ),
    )
