"""CR → policy compilation: pure functions the handlers call and the unit tests exercise."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from floodgate.ratelimit.model import API_VERSION, KIND, RateLimitPolicy
from floodgate.ratelimit.policyset import compile_policies


class InvalidPolicy(ValueError):
    """A custom resource the API server accepted but the model refuses (e.g. a bad regex)."""


def _format(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    return "; ".join(parts)


def policy_from_resource(*, name: str, namespace: str, spec: Mapping[str, Any]) -> RateLimitPolicy:
    """Validate a CR's spec with the same model the file format and the pods use."""
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }
    try:
        policy = RateLimitPolicy.model_validate(doc)
    except ValidationError as exc:
        raise InvalidPolicy(_format(exc)) from None
    try:
        compile_policies([policy], generation=0, origin="validation")
    except ValueError as exc:
        raise InvalidPolicy(str(exc)) from None
    return policy


def policy_set_digest(policies: Iterable[RateLimitPolicy]) -> str:
    """A content hash: equal sets publish nothing new, whatever order they arrived in."""
    docs = sorted(
        (p.model_dump(mode="json", by_alias=True) for p in policies),
        key=lambda d: (d["metadata"]["namespace"], d["metadata"]["name"]),
    )
    return hashlib.sha256(orjson.dumps(docs, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def ordered(policies: Iterable[RateLimitPolicy]) -> list[RateLimitPolicy]:
    return sorted(policies, key=lambda p: (p.metadata.namespace, p.metadata.name))
