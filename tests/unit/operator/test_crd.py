"""The committed CRD is exactly what the model generates, and it is a structural schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from floodgate.operator.crd import CRD_FILE, render_crd, render_yaml

REPO = Path(__file__).resolve().parents[3]


def test_committed_crd_matches_the_model() -> None:
    committed = (REPO / CRD_FILE).read_text()
    assert committed == render_yaml(), (
        "k8s/crds drifted from floodgate.ratelimit.model: run `python -m floodgate.operator.crd`"
    )


def _walk(node: Any, path: str = "") -> list[str]:
    problems: list[str] = []
    if isinstance(node, dict):
        for bad in ("$ref", "anyOf", "oneOf", "allOf", "title", "$defs"):
            if bad in node:
                problems.append(f"{path}: {bad}")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties: false")
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{path}: properties without type object")
        for key, value in node.items():
            problems += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            problems += _walk(value, f"{path}[{i}]")
    return problems


def test_schema_is_structural_and_documented() -> None:
    crd = render_crd()
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert _walk(schema) == []
    rules = schema["properties"]["spec"]["properties"]["rules"]
    assert rules["x-kubernetes-list-type"] == "map"
    assert rules["x-kubernetes-list-map-keys"] == ["name"]
    assert rules["items"]["x-kubernetes-validations"]
    for name, prop in rules["items"]["properties"].items():
        assert prop.get("description"), f"rules[].{name} has no description for kubectl explain"
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["shortNames"] == ["rlp"]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Mode",
        "Rules",
        "Programmed",
        "Applied",
        "Pods",
        "Age",
    ]


def test_crd_yaml_round_trips() -> None:
    assert yaml.safe_load(render_yaml()) == render_crd()
