"""kopf handlers: thin glue over `compile`, `status`, `store` and `kube`.

Registered on an explicit registry by `build_registry()` (nothing happens at import). kopf keeps an
index of every RateLimitPolicy; one loop recompiles the published policy set from that index (so a
missed event or a restart can never leave a stale policy behind) and writes each CR's status.
No handler needs a finalizer: deleting a policy never waits for the operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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
from floodgate.operator.crd import GROUP, PLURAL, VERSION
from floodgate.operator.kube import StatusWriter, connection_info
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


def build_registry(limits_url: str) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    # An explicit registry has none of kopf's default handlers: log in like kopf would without a
    # client library (service account in a pod, KUBECONFIG elsewhere).
    @kopf.on.login(registry=registry)
    def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
        return connection_info(settings)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.scanning.disabled = True  # our CRD is known; no need to watch all CRDs
        settings.posting.level = logging.WARNING
        state = OperatorState(
            store=PolicySetStore(limits_url), writer=StatusWriter(connection_info(settings))
        )
        state.task = asyncio.create_task(control_loop(state), name="floodgate-control-loop")
        memo["state"] = state

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        state: OperatorState = memo["state"]
        if state.task is not None:
            state.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await state.task
        await state.store.close()
        await state.writer.close()

    @kopf.index(GROUP, VERSION, PLURAL, id="policies", registry=registry)
    def policies(
        name: str,
        namespace: str | None,
        spec: kopf.Spec,
        meta: kopf.Meta,
        status: kopf.Status,
        **_: Any,
    ) -> dict[Key, IndexEntry]:
        ns = namespace or "default"
        generation = int(meta.get("generation") or 0)
        snapshot = dict(status)
        try:
            policy = policy_from_resource(name=name, namespace=ns, spec=spec)
        except InvalidPolicy as exc:
            return {(ns, name): IndexEntry(generation, None, str(exc), snapshot)}
        return {(ns, name): IndexEntry(generation, policy, None, snapshot)}

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def changed(memo: kopf.Memo, **kwargs: Any) -> None:
        # Runs after the index took the event in, deletions included.
        state: OperatorState = memo["state"]
        state.index = kwargs["policies"]
        state.dirty.set()

    return registry
