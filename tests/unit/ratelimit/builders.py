"""Small builders for rate-limit tests: policy documents and ASGI scopes."""

from __future__ import annotations

from typing import Any

from floodgate.ratelimit import RateLimitPolicy


def rule_doc(name: str = "per-client", **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "limit": {"requests": 5, "period": "10s"}}
    doc.update(overrides)
    return doc


def policy_doc(
    name: str = "reads",
    *rules: dict[str, Any],
    namespace: str = "shop",
    mode: str = "Enforce",
    failure_mode: str = "Open",
) -> dict[str, Any]:
    return {
        "apiVersion": "floodgate.dev/v1alpha1",
        "kind": "RateLimitPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "mode": mode,
            "failureMode": failure_mode,
            "rules": list(rules) or [rule_doc()],
        },
    }


def make_policy(name: str = "reads", *rules: dict[str, Any], **kwargs: Any) -> RateLimitPolicy:
    return RateLimitPolicy.model_validate(policy_doc(name, *rules, **kwargs))


def http_scope(
    path: str = "/api/v1/messages",
    method: str = "GET",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    client: str = "192.0.2.10",
) -> dict[str, Any]:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    return {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
        "client": (client, 40000),
    }
