"""The image names the local cluster serves in place of public ones (pure logic, plus the chart
rendered by helm to list what it pulls)."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import yaml
from scripts.cluster import images, node
from scripts.cluster.install import DEV_IMAGES, DEV_MANIFESTS

from tests.support import chart


def test_short_names_resolve_as_docker_does() -> None:
    assert images.docker_io("redis:7.4.2-alpine") == "docker.io/library/redis:7.4.2-alpine"
    assert images.docker_io("bitnami/redis:7") == "docker.io/bitnami/redis:7"
    assert images.docker_io("quay.io/x/y:1") == "quay.io/x/y:1"
    assert images.docker_io("127.0.0.1:5000/floodgate:t") == "127.0.0.1:5000/floodgate:t"
    assert images.docker_io("localhost/floodgate/python:k") == "localhost/floodgate/python:k"


def test_the_python_base_is_tagged_with_the_dockerfiles_default() -> None:
    assert images.dockerfile_default_base() == "docker.io/library/python:3.11-slim-bookworm"


def test_docker_io_is_mirrored_by_the_cluster_registry_only() -> None:
    hosts = node.registry_hosts("127.0.0.1:5123")
    assert set(hosts) == {"127.0.0.1:5123", "docker.io"}
    for text in hosts.values():
        # One host, ours, over plain HTTP; `server` is ours too, so no request leaves the machine.
        assert re.findall(r'\[host\."([^"]+)"\]', text) == ["http://127.0.0.1:5123"]
        assert 'server = "http://127.0.0.1:5123"' in text


def test_the_docker_api_treats_the_cluster_registry_as_plain_http() -> None:
    conf = images.registries_conf("127.0.0.1:5123")
    assert 'location = "127.0.0.1:5123"' in conf
    assert "insecure = true" in conf


def _images(obj: Any) -> set[str]:
    if isinstance(obj, dict):
        found = {obj["image"]} if isinstance(obj.get("image"), str) else set()
        return found.union(*(_images(v) for v in obj.values()))
    if isinstance(obj, list):
        return set().union(*(_images(v) for v in obj))
    return set()


def test_every_public_image_skaffold_deploys_has_a_stand_in() -> None:
    """k8s/dev/ and the chart's defaults (as skaffold.yaml deploys them) pull only the app's own
    image and names the cluster registry publishes (install.DEV_IMAGES)."""
    reason = chart.helm_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run this, but {reason}", pytrace=False)
        pytest.skip(reason)

    named = set()
    for path in DEV_MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            named |= _images(doc)
    for manifest in chart.render(values_files=[], set_values={"image.tag": "t"}):
        hook = manifest["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        if hook != "test":  # `helm test`'s pod is not deployed by skaffold
            named |= _images(manifest)
    public = {name for name in named if not name.startswith("floodgate:")}
    assert public, "nothing found: the walk is broken"
    assert public <= set(DEV_IMAGES), public - set(DEV_IMAGES)
