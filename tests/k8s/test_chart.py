"""The Helm chart on the real control plane (etcd + kube-apiserver, no kubelet).

Install, upgrade and uninstall; every pod the chart can create admitted under the restricted Pod
Security Standard; and the real operator doing its job with nothing but the chart's ServiceAccount
and RBAC.

No kubelet runs pods here, so hooks are disabled on install (the migration Job and the test pod
could never finish) and pods are checked by server-side dry run. ServiceMonitor and ScaledObject
have no CRDs on this apiserver: they are left out of the dry runs (tests/unit checks them).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.support import chart
from tests.support.chart import CHART, CI_VALUES, Manifest
from tests.support.k8s import ControlPlane
from tests.support.operator import OperatorProcess, eventually, start_operator
from tests.support.services import RedisServer, start_redis

pytestmark = [pytest.mark.k8s]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = REPO / "k8s" / "examples" / "reads-per-client.yaml"
ADDON_KINDS = {"ServiceMonitor", "ScaledObject"}
# Namespaces named by ci/namespaced-operator-values.yaml (Roles, dashboards): they must exist.
CI_NAMESPACES = ("shop", "billing", "monitoring")
T = TypeVar("T")


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def as_yaml(manifests: list[Manifest]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)


def ensure_namespace(cp: ControlPlane, name: str, labels: dict[str, str] | None = None) -> None:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    ok(cp.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest)))


CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace"}


def in_namespace(manifests: list[Manifest], namespace: str) -> list[Manifest]:
    """Namespaced objects without a namespace get this one (as `helm install -n` would do)."""
    placed: list[Manifest] = []
    for m in manifests:
        metadata = dict(m["metadata"])
        if m["kind"] not in CLUSTER_SCOPED:
            metadata.setdefault("namespace", namespace)
        placed.append({**m, "metadata": metadata})
    return placed


def installed_objects(cp: ControlPlane, release: str, namespace: str) -> list[Manifest]:
    return chart.parse_manifests(ok(cp.helm("get", "manifest", release, "-n", namespace)))


def live_names(cp: ControlPlane, manifests: list[Manifest], namespace: str) -> set[str]:
    """kind/name of every given object that exists on the apiserver now."""
    args = ["get", "-f", "-", "-n", namespace, "--ignore-not-found", "-o", "json"]
    got = cp.kubectl(*args, input=as_yaml(manifests))
    ok(got)
    items = json.loads(got.stdout)["items"] if got.stdout.strip() else []
    return {f"{item['kind']}/{item['metadata']['name']}" for item in items}


def names(manifests: list[Manifest]) -> set[str]:
    return {f"{m['kind']}/{m['metadata']['name']}" for m in manifests}


def secret_value(cp: ControlPlane, namespace: str, name: str, key: str) -> str:
    secret = json.loads(ok(cp.kubectl("get", "secret", name, "-n", namespace, "-o", "json")))
    return base64.b64decode(secret["data"][key]).decode()


def apply_crd_as_documented(cp: ControlPlane) -> subprocess.CompletedProcess[str]:
    """The upgrade path in the chart README: the chart's CRD, server-side applied by kubectl."""
    crds = ok(chart.run_helm("show", "crds", str(CHART)))
    return cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=crds)


@pytest.fixture(scope="module", autouse=True)
def crd_owned_by_kubectl_afterwards(control_plane: ControlPlane) -> Iterator[None]:
    """Hand the CRD's fields from helm (first install) to kubectl when done: later tests apply it
    with plain `kubectl apply --server-side`, which would conflict with helm's ownership."""
    yield
    ok(apply_crd_as_documented(control_plane))


# ----------------------------------------------------------------------------- lifecycle


def crd_exists(cp: ControlPlane) -> bool:
    return cp.kubectl("get", "crd", "ratelimitpolicies.floodgate.dev").returncode == 0


def test_install_upgrade_uninstall(control_plane: ControlPlane, unique_namespace: str) -> None:
    cp, ns = control_plane, unique_namespace
    # The CRD is cluster-wide: the first release installs it from crds/, later ones skip it (helm 4
    # server-side applies crds/ and would conflict with the fields kubectl took over on upgrade).
    first = not crd_exists(cp)
    skip = [] if first else ["--skip-crds"]
    ok(cp.helm("install", "floodgate", str(CHART), "-n", ns, "--no-hooks", *skip, timeout=180))
    if first:
        get = [
            "get",
            "crd",
            "ratelimitpolicies.floodgate.dev",
            "-o",
            "json",
            "--show-managed-fields",
        ]
        crd = json.loads(ok(cp.kubectl(*get)))
        assert "helm" in {f["manager"] for f in crd["metadata"]["managedFields"]}

    # Every object the chart renders (hooks aside) exists, the CRD included.
    expected = [
        m
        for m in chart.render(namespace=ns)
        if not chart.is_hook(m) and m["kind"] not in ADDON_KINDS
    ]
    manifests = installed_objects(cp, "floodgate", ns)
    assert names(manifests) == names(expected)
    assert live_names(cp, manifests, ns) == names(expected)
    ok(cp.kubectl("wait", "--for=condition=Established", "crd/ratelimitpolicies.floodgate.dev"))
    # The documented CRD upgrade works on a CRD that helm installed.
    ok(apply_crd_as_documented(cp))
    operator_role = f"ClusterRole/{ns}-floodgate-operator"  # cluster-scoped: named per namespace
    assert {"Deployment/floodgate", "Deployment/floodgate-operator", operator_role} <= names(
        manifests
    )
    cursor = secret_value(cp, ns, "floodgate-cursor", "cursor-secret")
    redis_password = secret_value(cp, ns, "floodgate-redis", "password")
    assert len(cursor) >= 32
    assert len(redis_password) >= 32

    # Upgrade: HPA on, network policies on, sidecar as a plain container, ServiceMonitor asked
    # for but skipped (this cluster has no monitoring.coreos.com/v1).
    upgrade = ["upgrade", "floodgate", str(CHART), "-n", ns, "--no-hooks"]
    upgrade += ["--values", str(CHART / "ci" / "hpa-values.yaml")]
    ok(cp.helm(*upgrade, "--set", "cacheSidecar.native=false", timeout=180))
    upgraded = installed_objects(cp, "floodgate", ns)
    assert {"HorizontalPodAutoscaler/floodgate", "NetworkPolicy/floodgate"} <= names(upgraded)
    assert not any(m["kind"] == "ServiceMonitor" for m in upgraded)
    assert live_names(cp, upgraded, ns) == names(upgraded)
    deployment = json.loads(
        ok(cp.kubectl("get", "deployment", "floodgate", "-n", ns, "-o", "json"))
    )
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert [c["name"] for c in pod["containers"]] == ["api", "cache"]
    # Generated secrets survive the upgrade (looked up from the live Secret), or every cursor
    # handed out before it would stop verifying.
    assert secret_value(cp, ns, "floodgate-cursor", "cursor-secret") == cursor
    assert secret_value(cp, ns, "floodgate-redis", "password") == redis_password
    history = json.loads(ok(cp.helm("history", "floodgate", "-n", ns, "-o", "json")))
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]

    ok(cp.helm("uninstall", "floodgate", "-n", ns, timeout=180))
    assert live_names(cp, upgraded, ns) == set()
    assert cp.helm("status", "floodgate", "-n", ns).returncode != 0
    # Helm never deletes CRDs (policies elsewhere would go with them).
    ok(cp.kubectl("get", "crd", "ratelimitpolicies.floodgate.dev"))


# ----------------------------------------------------------------------------- pod security


@pytest.fixture(scope="module")
def restricted_namespace(control_plane: ControlPlane) -> str:
    """A namespace enforcing (and warning about) the restricted Pod Security Standard."""
    name = f"restricted-{uuid.uuid4().hex[:8]}"
    ensure_namespace(
        control_plane,
        name,
        {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/warn-version": "latest",
        },
    )
    for extra in CI_NAMESPACES:
        ensure_namespace(control_plane, extra)
    return name


def test_the_restricted_namespace_really_enforces(
    control_plane: ControlPlane, restricted_namespace: str
) -> None:
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root", "namespace": restricted_namespace},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.37.0"}]},
    }
    refused = control_plane.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(privileged)
    )
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr, refused.stderr


@pytest.mark.parametrize("values_file", CI_VALUES, ids=lambda p: p.name.split("-values")[0])
def test_every_pod_is_admitted_under_restricted_pod_security(
    control_plane: ControlPlane, restricted_namespace: str, values_file: Path
) -> None:
    cp, ns = control_plane, restricted_namespace
    manifests = chart.render(
        values_files=[values_file], api_versions=chart.ADDON_APIS, namespace=ns
    )
    templates = chart.pod_templates(manifests)
    assert any(t.owner == "Deployment/floodgate" for t in templates)
    pods = [
        t.as_pod(f"{t.owner.replace('/', '-').lower()}-{i}"[:63], ns)
        for i, t in enumerate(templates)
    ]
    # The pods themselves: enforced (a violation is an error, not a warning).
    created = cp.kubectl("create", "--dry-run=server", "-f", "-", input=as_yaml(pods))
    ok(created)
    assert "PodSecurity" not in created.stderr, created.stderr
    # Every object of the release (hooks and the test pod included) is valid for this apiserver;
    # workload objects get PodSecurity *warnings* for templates that would violate.
    objects = in_namespace([m for m in manifests if m["kind"] not in ADDON_KINDS], ns)
    applied = cp.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=as_yaml(objects)
    )
    ok(applied)
    assert "would violate PodSecurity" not in applied.stderr, applied.stderr


def test_dev_manifests_are_admitted_under_restricted_pod_security(
    control_plane: ControlPlane, restricted_namespace: str
) -> None:
    docs = [
        doc
        for path in sorted((REPO / "k8s" / "dev").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    templates = chart.pod_templates(docs)
    pods = [t.as_pod(f"dev-{i}", restricted_namespace) for i, t in enumerate(templates)]
    ok(control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=as_yaml(pods)))
    placed = as_yaml(in_namespace(docs, restricted_namespace))
    applied = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=placed
    )
    ok(applied)
    assert "would violate PodSecurity" not in applied.stderr, applied.stderr


# ----------------------------------------------------------------------------- operator RBAC


def token_kubeconfig(cp: ControlPlane, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig whose only credential is a real token of the ServiceAccount (TokenRequest)."""
    token = ok(cp.kubectl("create", "token", account, "-n", namespace, "--duration=1h")).strip()
    config = json.loads(cp.kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = account
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def kubectl_as(cp: ControlPlane, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cp.bin_dir / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=cp.client_env({"KUBECONFIG": str(kubeconfig)}),
    )


def start_chart_operator(
    operator: Manifest, kubeconfig: Path, redis: RedisServer, workdir: Path
) -> OperatorProcess:
    """`floodgate` with the chart's operator args and plain env, the SA kubeconfig, a real Redis."""
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    env = {
        **os.environ,
        **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
        "KUBECONFIG": str(kubeconfig),
        "FLOODGATE_LIMITS_URL": redis.url,  # the chart's comes from the in-cluster Redis Secret
    }
    return start_operator(env, workdir, args=list(container["args"]))


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


def accepted(cp: ControlPlane, namespace: str, name: str) -> dict[str, Any] | None:
    got = json.loads(ok(cp.kubectl("get", "rlp", name, "-n", namespace, "-o", "json")))
    status: dict[str, Any] = got.get("status") or {}
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    done = status.get("observedGeneration") == 1 and conditions.get("Accepted", {}).get("status")
    return status if done == "True" else None


@pytest.mark.redis
@pytest.mark.parametrize("scope", ["cluster-wide", "namespaced"])
def test_the_operator_works_with_only_the_charts_rbac(
    control_plane: ControlPlane,
    unique_namespace: str,
    redis: RedisServer,
    tmp_path: Path,
    scope: str,
) -> None:
    cp, ns = control_plane, unique_namespace
    settings = ["--set-json", f'operator.namespaces=["{ns}"]'] if scope == "namespaced" else []
    ok(apply_crd_as_documented(cp))
    install = ["install", "floodgate", str(CHART), "-n", ns, "--no-hooks", "--skip-crds"]
    ok(cp.helm(*install, *settings, timeout=180))
    ok(cp.kubectl("wait", "--for=condition=Established", "crd/ratelimitpolicies.floodgate.dev"))
    manifests = installed_objects(cp, "floodgate", ns)
    operator = chart.one(manifests, "Deployment", "floodgate-operator")
    account = operator["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = token_kubeconfig(cp, ns, account, tmp_path / "operator.kubeconfig")

    def can(*args: str) -> bool:
        return kubectl_as(cp, kubeconfig, "auth", "can-i", *args).returncode == 0

    rlp = "ratelimitpolicies.floodgate.dev"
    assert can("watch", rlp, "-n", ns)
    assert can("list", rlp, "-n", ns)
    assert can("patch", rlp, "--subresource=status", "-n", ns)
    assert can("create", "events", "-n", ns)
    assert can("list", rlp, "--all-namespaces") is (scope == "cluster-wide")
    for verb, resource in (
        ("get", "secrets"), ("list", "secrets"), ("create", rlp), ("patch", rlp),
        ("delete", rlp), ("create", "deployments.apps"), ("list", "pods"),
        ("list", "namespaces"), ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ):  # fmt: skip
        assert not can(verb, resource, "-n", ns), f"the operator may {verb} {resource}"
    forbidden = kubectl_as(cp, kubeconfig, "get", "secrets", "-n", ns)
    assert forbidden.returncode != 0
    assert "Forbidden" in forbidden.stderr, forbidden.stderr

    running = start_chart_operator(operator, kubeconfig, redis, tmp_path)
    try:
        ok(cp.kubectl("apply", "-n", ns, "-f", str(EXAMPLE_POLICY)))
        status, _ = eventually(lambda: accepted(cp, ns, "reads"), 30, "the policy's status")
        assert {c["type"] for c in status["conditions"]} >= {"Accepted", "Programmed"}
    finally:
        log = running.stop()
        # Never leave a policy behind: other tests' cluster-wide operators would publish it.
        cp.kubectl("delete", "rlp", "--all", "-n", ns, "--timeout=20s")
    assert "Forbidden" not in log, log[-4000:]
    assert " 403 " not in log, log[-4000:]
