"""kopf handlers: each one small and typed, handing its event to `loop` (and `kube` for login).

Registered on an explicit registry by `build_registry()` (nothing happens at import). kopf keeps an
index of every RateLimitPolicy; `loop.control_loop` publishes the policy set from that index and
writes each CR's status. No handler needs a finalizer: deleting a policy never waits for the
operator.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from floodgate.operator import loop
from floodgate.operator.crd import GROUP, PLURAL, VERSION
from floodgate.operator.kube import StatusWriter, connection_info
from floodgate.operator.loop import IndexEntry, Key, OperatorState
from floodgate.operator.store import PolicySetStore


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
        memo["state"] = loop.start(
            PolicySetStore(limits_url), StatusWriter(connection_info(settings))
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        state: OperatorState = memo["state"]
        await loop.stop(state)

    @kopf.index(GROUP, VERSION, PLURAL, id="policies", registry=registry)
    def policies(
        name: str,
        namespace: str | None,
        spec: kopf.Spec,
        meta: kopf.Meta,
        status: kopf.Status,
        **_: Any,
    ) -> dict[Key, IndexEntry]:
        return loop.index_entry(name=name, namespace=namespace, spec=spec, meta=meta, status=status)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def changed(memo: kopf.Memo, **kwargs: Any) -> None:
        # Runs after the index took the event in, deletions included.
        state: OperatorState = memo["state"]
        state.index = kwargs["policies"]
        state.dirty.set()

    return registry
