"""The Cache dashboard: hit ratio per tier, fills, backend errors and sidecar latency."""

from __future__ import annotations

from .model import Dashboard, Panel, Query, Row
from .promql import quantile, rate, sel, sum_rate

LOOKUPS = "floodgate_cache_lookups_total"
FILLS = "floodgate_cache_fills_total"


def dashboard() -> Dashboard:
    return Dashboard(
        uid="floodgate-cache",
        title="Floodgate / Cache",
        description="Hit ratio per tier (L1 in-process, L2 Redis sidecar), fills, errors, latency.",
        rows=(
            Row(
                "Effectiveness",
                (
                    Panel(
                        "Hit ratio by tier",
                        "Hits over lookups per tier (l1 = in-process, l2 = Redis sidecar).",
                        "percentunit",
                        (
                            Query(
                                sum_rate(LOOKUPS, "tier", sel(result="hit"))
                                + f" / ({sum_rate(LOOKUPS, 'tier')} > 0)",
                                "{{tier}}",
                            ),
                        ),
                        max=1,
                    ),
                    Panel(
                        "Lookups by tier and result",
                        "Cache lookups per second.",
                        "reqps",
                        (Query(f"sum by (tier, result) ({rate(LOOKUPS)})", "{{tier}} {{result}}"),),
                    ),
                    Panel(
                        "Fills by outcome",
                        "Misses per second by how they were answered: loaded by this caller, "
                        "coalesced onto another caller's load, or the loader failed.",
                        "reqps",
                        (Query(f"sum by (outcome) ({rate(FILLS)})", "{{outcome}}"),),
                    ),
                    Panel(
                        "Coalesced share of fills",
                        "Misses that waited for someone else's load instead of hitting the "
                        "database.",
                        "percentunit",
                        (
                            Query(
                                sum_rate(FILLS, selector=sel(outcome="coalesced"))
                                + f" / ({sum_rate(FILLS)} > 0)",
                                "coalesced",
                            ),
                        ),
                        max=1,
                    ),
                ),
            ),
            Row(
                "Backend",
                (
                    Panel(
                        "Backend errors",
                        "Failed or skipped (circuit open) calls to the sidecar or the invalidation "
                        "bus; requests were served without them.",
                        "reqps",
                        (
                            Query(
                                sum_rate("floodgate_cache_backend_errors_total", "backend"),
                                "{{backend}}",
                            ),
                        ),
                    ),
                    Panel(
                        "Invalidations by origin",
                        "Entries invalidated per second: local writes, or messages from other "
                        "pods.",
                        "reqps",
                        (
                            Query(
                                f"sum by (origin) ({rate('floodgate_cache_invalidations_total')})",
                                "{{origin}}",
                            ),
                        ),
                    ),
                    Panel(
                        "Sidecar Redis latency (p50 / p99)",
                        "Round trips to the pod's Redis sidecar (L2), as the client sees them.",
                        "s",
                        tuple(
                            Query(
                                quantile(
                                    q,
                                    "floodgate_redis_command_duration_seconds",
                                    sel(role="sidecar"),
                                ),
                                f"p{int(q * 100)}",
                            )
                            for q in (0.5, 0.99)
                        ),
                        exemplars=True,
                    ),
                    Panel(
                        "Sidecar Redis commands",
                        "Commands (and pipelines) per second sent to the sidecar, by command.",
                        "reqps",
                        (
                            Query(
                                "sum by (command) ("
                                + rate(
                                    "floodgate_redis_command_duration_seconds_count",
                                    sel(role="sidecar"),
                                )
                                + ")",
                                "{{command}}",
                            ),
                        ),
                    ),
                ),
            ),
        ),
    )
