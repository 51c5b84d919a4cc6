"""The control loop: publish the policy set kopf's index holds, then reconcile every CR's status.

It recompiles the published set from the whole index on every change and tick (so a missed event or
a restart can never leave a stale policy behind), and writes a status only when it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from floodgate.operator.compile import (
    InvalidPolicy,
    ordered,
    policy_from_resource,
    policy_set_digest,
)
from floodgate.operator.kube import StatusWriter
from floodgate.operator.status import Rollout, compute_status, rollout
from floodgate.operator.store import PolicySetStore
from floodgate.ratelimit.model import RateLimitPolicy

logger = logging.getLogger("floodgate.operator")

# With no RateLimitPolicy at all no event ever arrives; after this long, publish the empty set.
EMPTY_CLUSTER_GRACE_S = 3.0
LOOP_INTERVAL_S = 0.5

Key = tuple[str, str]


@dataclass(frozen=True)
class IndexEntry:
    generation: int
    policy: RateLimitPolicy | None
    error: str | None
    status: dict[str, Any]


@dataclass
class OperatorState:
    store: PolicySetStore
    writer: StatusWriter
    index: kopf.Index[Key, IndexEntry] | None = None
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    published_generation: int = 0
    published_digest: str | None = None
    # (namespace, name) → the CR generation contained in the published set.
    included: dict[Key, int] = field(default_factory=dict)
    written: dict[Key, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None


def entries(index: kopf.Index[Key, IndexEntry] | None) -> dict[Key, IndexEntry]:
    found: dict[Key, IndexEntry] = {}
    if index is not None:
        for key, store in index.items():
            for entry in store:
                found[key] = entry
    return found


async def publish(state: OperatorState, current: dict[Key, IndexEntry]) -> None:
    accepted = {key: e for key, e in current.items() if e.policy is not None}
    policies = ordered(e.policy for e in accepted.values() if e.policy is not None)
    digest = policy_set_digest(policies)
    generation = await state.store.publish(policies, digest)
    if (generation, digest) != (state.published_generation, state.published_digest):
        logger.info(
            "policy set generation %d published: %d policies, digest %s",
            generation,
            len(policies),
            digest,
        )
    state.published_generation, state.published_digest = generation, digest
    state.included = {key: e.generation for key, e in accepted.items()}


async def report(state: OperatorState, current: dict[Key, IndexEntry]) -> None:
    acks = await state.store.acks() if current else {}
    live = rollout(acks, state.published_generation)
    now = datetime.now(UTC)
    for key, entry in current.items():
        state_rollout: Rollout | None = None
        if entry.error is None:
            published = state.included.get(key) == entry.generation
            state_rollout = live if published else Rollout(0, live.ready_pods, 0)
        previous = state.written.get(key) or entry.status
        new = compute_status(
            observed_generation=entry.generation,
            error=entry.error,
            rollout_state=state_rollout,
            previous_conditions=list(previous.get("conditions") or []),
            now=now,
        )
        if all(entry.status.get(k) == v for k, v in new.items()) or state.written.get(key) == new:
            continue
        if await state.writer.patch_status(key[0], key[1], new):
            state.written[key] = new
    for gone in set(state.written) - set(current):
        del state.written[gone]


async def control_loop(state: OperatorState) -> None:
    """Publish when the index changed (and re-check on every tick), then refresh every status."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.dirty.wait(), timeout=LOOP_INTERVAL_S)
        state.dirty.clear()
        if state.index is None and time.monotonic() - state.started < EMPTY_CLUSTER_GRACE_S:
            continue  # the initial listing has not reached us yet
        current = entries(state.index)
        try:
            await publish(state, current)
            await report(state, current)
        except Exception as exc:  # keep going; the next tick retries
            logger.warning("control loop: %s", exc)


def index_entry(
    *,
    name: str,
    namespace: str | None,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
) -> dict[Key, IndexEntry]:
    """What the index keeps of one RateLimitPolicy: its compiled policy, or why it is invalid."""
    ns = namespace or "default"
    generation = int(meta.get("generation") or 0)
    snapshot = dict(status)
    try:
        policy = policy_from_resource(name=name, namespace=ns, spec=spec)
    except InvalidPolicy as exc:
        return {(ns, name): IndexEntry(generation, None, str(exc), snapshot)}
    return {(ns, name): IndexEntry(generation, policy, None, snapshot)}


def start(store: PolicySetStore, writer: StatusWriter) -> OperatorState:
    """The operator's state, with its control loop running as a task."""
    state = OperatorState(store=store, writer=writer)
    state.task = asyncio.create_task(control_loop(state), name="floodgate-control-loop")
    return state


async def stop(state: OperatorState) -> None:
    if state.task is not None:
        state.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await state.task
    await state.store.close()
    await state.writer.close()
