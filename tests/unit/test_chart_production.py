"""The chart runs the API in production mode by default, with a real cursor secret."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.support import chart
from tests.support.chart import find, one, render

pytestmark = pytest.mark.skipif(chart.helm_missing() is not None, reason="helm is not installed")


def _api_env(manifests: list[chart.Manifest]) -> list[dict[str, Any]]:
    (template,) = [t for t in chart.pod_templates(manifests) if t.owner == "Deployment/floodgate"]
    env: list[dict[str, Any]] = template.container("api")["env"]
    return env


def test_default_deployment_sets_production_mode_once() -> None:
    manifests = render()
    entries = [e for e in _api_env(manifests) if e["name"] == "FLOODGATE_ENVIRONMENT"]
    assert entries == [{"name": "FLOODGATE_ENVIRONMENT", "value": "production"}]
    # Production mode refuses weak secrets: the generated one is long enough for it.
    (cursor,) = [e for e in _api_env(manifests) if e["name"] == "FLOODGATE_CURSOR_SECRET"]
    ref = cursor["valueFrom"]["secretKeyRef"]
    secret = one(manifests, "Secret", ref["name"])
    assert len(base64.b64decode(secret["data"][ref["key"]])) >= 32


def test_development_mode_is_an_explicit_choice() -> None:
    manifests = render(set_values={"environment": "development"})
    entries = [e for e in _api_env(manifests) if e["name"] == "FLOODGATE_ENVIRONMENT"]
    assert entries == [{"name": "FLOODGATE_ENVIRONMENT", "value": "development"}]


def test_an_existing_cursor_secret_is_used_instead_of_a_generated_one() -> None:
    manifests = render(set_values={"cursorSecret.existingSecret": "mine"})
    (cursor,) = [e for e in _api_env(manifests) if e["name"] == "FLOODGATE_CURSOR_SECRET"]
    assert cursor["valueFrom"]["secretKeyRef"]["name"] == "mine"
    assert not find(manifests, "Secret", "floodgate-cursor")
