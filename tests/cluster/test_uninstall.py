"""Last of the cluster tests (by file name): `helm uninstall` leaves nothing but the CRD."""

from __future__ import annotations

import json

import pytest
from scripts.cluster.cluster import Cluster
from scripts.cluster.install import NAMESPACE, RELEASE, Installed

from tests.cluster.test_bundle import RESULTS, kget, wait_for

pytestmark = pytest.mark.cluster


NAMESPACED_KINDS = (
    "deployments,replicasets,pods,services,endpointslices,configmaps,secrets,serviceaccounts,"
    "roles,rolebindings,poddisruptionbudgets,horizontalpodautoscalers,networkpolicies,jobs"
)


def test_helm_uninstall_leaves_only_the_crd(cluster: Cluster, installed: Installed) -> None:
    removed = cluster.helm(
        "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=180s", timeout=240
    )
    assert removed.returncode == 0, removed.stderr

    def leftovers() -> list[str]:
        found = kget(
            cluster, "-n", NAMESPACE, NAMESPACED_KINDS, "-l", "app.kubernetes.io/instance=floodgate"
        )["items"]
        found += kget(
            cluster,
            "clusterroles,clusterrolebindings",
            "-l",
            "app.kubernetes.io/instance=floodgate",
        )["items"]
        return [f"{o['kind']}/{o['metadata']['name']}" for o in found]

    wait_for("nothing of the release left", lambda: not leftovers(), timeout=120)
    crd = cluster.kubectl("get", "crd", "ratelimitpolicies.floodgate.dev")
    assert crd.returncode == 0, "the CRD is documented to stay"
    print(f"\ncluster results: {json.dumps(RESULTS)}")
