"""Fixtures for the k8s tests: one real control plane per session, a fresh namespace per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.support.k8s import TOOLS_BIN, ControlPlane


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    if not (TOOLS_BIN / "kube-apiserver").exists():
        reason = f"{TOOLS_BIN / 'kube-apiserver'} is missing: run `make tools` to build it"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the k8s tests, but {reason}", pytrace=False)
        pytest.skip(reason)
    cp = ControlPlane().start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def unique_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A namespace of its own for each test.

    A bare apiserver has no controller-manager, so a deleted namespace stays Terminating for ever:
    never reuse a name; deletion is only requested.
    """
    name = f"t-{uuid.uuid4().hex[:12]}"
    created = control_plane.kubectl("create", "namespace", name)
    assert created.returncode == 0, created.stderr
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")
