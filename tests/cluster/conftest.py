"""The cluster for these tests: the one `make cluster` left running, or one started (and removed)
by this session. CI must run them: there, anything missing is a failure, not a skip."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripts.cluster import config as c
from scripts.cluster import host
from scripts.cluster.cluster import Cluster, missing_prerequisites
from scripts.cluster.install import Installed, install

_OURS = pytest.StashKey[bool]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The runbook test ends with `make cluster-down`: nothing that needs the cluster may follow."""
    last = [i for i in items if i.path.name == "test_runbook.py"]
    items[:] = [i for i in items if i.path.name != "test_runbook.py"] + last


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the cluster tests, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        _unavailable("the cluster needs root")
    missing = missing_prerequisites()
    if missing:
        _unavailable(f"missing {', '.join(missing)}: run `make services tools`")
    cl = Cluster()
    ours = not cl.running()
    request.config.stash[_OURS] = ours
    if ours and (cl.state() is not None or cl.layout.root.exists()):
        # A dead cluster's remains (its bridge, veths, mounts) are not the host's own state:
        # clear them before taking the snapshot that `down` must restore.
        problems = cl.down()
        assert not problems, f"clearing a dead cluster left: {problems}"
    before = _host_snapshot()
    cl.up()
    try:
        yield cl
    finally:
        if ours:
            problems = cl.down()
            assert not problems, f"cluster-down left: {problems}"
            # Everything `up` changed on the host is back as it was.
            assert _host_snapshot() == before
            assert not cl.layout.root.exists()


def _host_snapshot() -> dict[str, object]:
    owned = re.compile(r"^:((?:KUBE-|CNI-|FLOODGATE-CLUSTER)\S*)", re.MULTILINE)
    saves = [host.run(f"{b}-save", check=False).stdout for b in ("iptables", "ip6tables")]
    return {
        "sysctls": host.read_sysctls([*host.HARNESS_SYSCTLS, *host.KUBELET_SYSCTLS]),
        "bridge": host.bridge_exists(),
        "chains": sorted(m for text in saves for m in owned.findall(text)),
        "cgroups": [str(r) for r in host.cgroup_roots() if r.exists()],
        "mounts": host.mounts_under(c.default_state_dir()),
        "links": sorted(Path("/sys/class/net").iterdir()),
    }


@pytest.fixture(scope="session")
def cluster_is_ours(request: pytest.FixtureRequest, cluster: Cluster) -> bool:
    """Whether this session started the cluster (and so may remove it)."""
    return request.config.stash[_OURS]


@pytest.fixture(scope="session")
def installed(cluster: Cluster) -> Installed:
    return install(cluster, replicas=2)
