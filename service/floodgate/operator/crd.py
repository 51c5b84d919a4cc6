"""Render the RateLimitPolicy CRD from the pydantic model, so the schema can never drift from it.

`python -m floodgate.operator.crd` rewrites k8s/crds/; a test fails when the committed file differs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from floodgate.ratelimit.model import MAX_CAPACITY, PolicySpec

GROUP = "floodgate.dev"
VERSION = "v1alpha1"
PLURAL = "ratelimitpolicies"
CRD_NAME = f"{PLURAL}.{GROUP}"
CRD_FILE = Path("k8s/crds/ratelimitpolicies.floodgate.dev.yaml")

_KIND_DOC = (
    "Rate limits applied by every Floodgate API pod. Apply with kubectl; "
    "`kubectl get rlp` shows when every pod has programmed it."
)
_CONDITIONS_DOC = "Accepted (the spec is valid) and Programmed (every live pod applied it)."

# Rules the OpenAPI schema cannot say, checked by the API server with CEL.
_RULE_VALIDATIONS = [
    {
        "rule": f"self.limit.requests + self.burst <= {MAX_CAPACITY}",
        "message": f"limit.requests + burst must be at most {MAX_CAPACITY}",
        "fieldPath": ".burst",
    },
    {
        "rule": "self.cost <= self.limit.requests + self.burst",
        "message": "cost can never be paid: it exceeds limit.requests + burst",
        "fieldPath": ".cost",
    },
]
_PATH_VALIDATIONS = [
    {
        "rule": "self.type == 'RegularExpression' || self.value.startsWith('/')",
        "message": "value must start with '/' unless type is RegularExpression",
        "fieldPath": ".value",
    }
]


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Resolve $refs and turn pydantic's JSON Schema into a Kubernetes structural schema."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **_inline(extra, defs)}
    if "anyOf" in node:
        # Optional[X] → X: an absent field is how Kubernetes says "null".
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return _inline({**options[0], **rest}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "additionalProperties" and value is False:
            continue  # not allowed in CRDs: the API server prunes (or, strict, rejects) unknowns
        if key == "default" and value in ({}, []):
            continue
        out[key] = _inline(value, defs)
    return out


def spec_schema() -> dict[str, Any]:
    raw = PolicySpec.model_json_schema(by_alias=True, mode="validation")
    schema: dict[str, Any] = _inline(raw, raw.get("$defs", {}))
    rules = schema["properties"]["rules"]
    rules["x-kubernetes-list-type"] = "map"
    rules["x-kubernetes-list-map-keys"] = ["name"]
    rule = rules["items"]
    rule["x-kubernetes-validations"] = _RULE_VALIDATIONS
    # Defaults the CEL rules rely on must be present after defaulting.
    rule["properties"]["burst"].setdefault("default", 0)
    rule["properties"]["cost"].setdefault("default", 1)
    path = rule["properties"]["match"]["properties"]["path"]
    path["x-kubernetes-validations"] = _PATH_VALIDATIONS
    path["properties"]["type"].setdefault("default", "PathPrefix")
    return schema


def _condition_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "status", "lastTransitionTime", "reason", "message"],
        "properties": {
            "type": {"type": "string", "maxLength": 316},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "reason": {"type": "string", "maxLength": 1024},
            "message": {"type": "string", "maxLength": 32768},
        },
    }


def status_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "What the operator observed and how far the policy has propagated.",
        "properties": {
            "observedGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "metadata.generation of the spec this status describes.",
            },
            "policySetGeneration": {
                "type": "integer",
                "format": "int64",
                "description": "Generation of the compiled policy set that contains this spec.",
            },
            "appliedPods": {
                "type": "integer",
                "description": "Live API processes that applied that policy set generation.",
            },
            "readyPods": {
                "type": "integer",
                "description": "Live API processes reporting to the shared Redis.",
            },
            "conditions": {
                "type": "array",
                "description": _CONDITIONS_DOC,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": _condition_schema(),
            },
        },
    }


def render_crd() -> dict[str, Any]:
    programmed = '.status.conditions[?(@.type=="Programmed")].status'
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "annotations": {"floodgate.dev/generated-by": "python -m floodgate.operator.crd"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": PLURAL,
                "singular": "ratelimitpolicy",
                "kind": "RateLimitPolicy",
                "listKind": "RateLimitPolicyList",
                "shortNames": ["rlp"],
                "categories": ["floodgate"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
                        {"name": "Rules", "type": "string", "jsonPath": ".spec.rules[*].name"},
                        {"name": "Programmed", "type": "string", "jsonPath": programmed},
                        {"name": "Applied", "type": "integer", "jsonPath": ".status.appliedPods"},
                        {"name": "Pods", "type": "integer", "jsonPath": ".status.readyPods"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": _KIND_DOC,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


def render_yaml() -> str:
    header = "# Generated from floodgate.ratelimit.model by `python -m floodgate.operator.crd`.\n"
    header += "# Do not edit: change the model and regenerate (a test fails on drift).\n"
    return header + yaml.safe_dump(render_crd(), sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else CRD_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_yaml())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
