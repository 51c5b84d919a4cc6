"""The local control plane is real: versioned API, storage, admission, RBAC, kubectl, helm."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.k8s import ControlPlane

pytestmark = pytest.mark.k8s

RESTRICTED_LABEL = "pod-security.kubernetes.io/enforce=restricted"


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def _eventually(
    run: Callable[[], subprocess.CompletedProcess[str]], timeout: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """Repeat `run` until it exits 0 or the deadline passes; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = run()
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def _pod(name: str, *, privileged: bool) -> str:
    if privileged:
        pod_security: dict[str, object] = {}
        container_security: dict[str, object] = {"privileged": True}
    else:
        pod_security = {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        container_security = {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "securityContext": pod_security,
            "containers": [
                {
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.10",  # never pulled: there is no kubelet
                    "securityContext": container_security,
                }
            ],
        },
    }
    return json.dumps(pod)


def test_version_is_1_36(control_plane: ControlPlane) -> None:
    status, body = control_plane.get("/version")
    assert status == 200
    version = json.loads(body)
    assert version["gitVersion"].startswith("v1.36."), version
    assert (version["major"], version["minor"]) == ("1", "36")

    client = control_plane.kubectl("version", "--output=json")
    _ok(client)
    versions = json.loads(client.stdout)
    assert versions["clientVersion"]["gitVersion"].startswith("v1.36.")
    assert versions["serverVersion"]["gitVersion"] == version["gitVersion"]


def test_readyz_and_loopback_only(control_plane: ControlPlane) -> None:
    status, body = control_plane.get("/readyz?verbose")
    assert status == 200, body.decode()
    assert control_plane.server.startswith("https://127.0.0.1:")
    assert control_plane.etcd_url.startswith("http://127.0.0.1:")


def test_namespace_and_configmap_round_trip(control_plane: ControlPlane) -> None:
    ns = f"cm-{uuid.uuid4().hex[:10]}"
    _ok(control_plane.kubectl("create", "namespace", ns))
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "floodgate-settings", "labels": {"app": "floodgate"}},
        "data": {"FLOODGATE_CACHE_URL": "redis://127.0.0.1:6379/0", "policy.yaml": "a: 1\n"},
    }
    _ok(control_plane.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest)))

    got = control_plane.kubectl("get", "configmap", "floodgate-settings", "-n", ns, "-o", "json")
    _ok(got)
    stored = json.loads(got.stdout)
    assert stored["data"] == manifest["data"]
    assert stored["metadata"]["labels"] == {"app": "floodgate"}
    assert stored["metadata"]["namespace"] == ns
    assert stored["metadata"]["uid"]  # assigned by the server

    listed = control_plane.kubectl(
        "get", "configmaps", "-n", ns, "-l", "app=floodgate", "-o", "name"
    )
    _ok(listed)
    assert listed.stdout.split() == ["configmap/floodgate-settings"]


def test_pod_security_admission_restricted(
    control_plane: ControlPlane, unique_namespace: str
) -> None:
    _ok(control_plane.kubectl("label", "namespace", unique_namespace, RESTRICTED_LABEL))

    rejected = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", unique_namespace, "-f", "-",
        input=_pod("privileged", privileged=True),
    )  # fmt: skip
    assert rejected.returncode != 0, rejected.stdout
    assert "violates PodSecurity" in rejected.stderr, rejected.stderr
    assert "restricted" in rejected.stderr

    admitted = control_plane.kubectl(
        "apply", "--dry-run=server", "-n", unique_namespace, "-f", "-", "-o", "json",
        input=_pod("compliant", privileged=False),
    )  # fmt: skip
    _ok(admitted)
    assert json.loads(admitted.stdout)["metadata"]["name"] == "compliant"

    # A dry run stores nothing.
    pods = control_plane.kubectl("get", "pods", "-n", unique_namespace, "-o", "name")
    _ok(pods)
    assert pods.stdout.strip() == ""


def _write_chart(root: Path) -> Path:
    chart = root / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\nappVersion: '1.0'\n"
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: {{ .Release.Name }}-tiny\n"
        "data:\n"
        "  greeting: {{ .Values.greeting | quote }}\n"
        "  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )
    return chart


def test_helm_version_and_template(control_plane: ControlPlane, tmp_path: Path) -> None:
    version = control_plane.helm("version", "--short")
    _ok(version)
    assert version.stdout.startswith("v4."), version.stdout

    chart = _write_chart(tmp_path)
    rendered = control_plane.helm("template", "demo", str(chart), "--set", "greeting=hi there")
    _ok(rendered)
    assert "name: demo-tiny" in rendered.stdout
    assert 'greeting: "hi there"' in rendered.stdout


def test_helm_install_sees_cluster_version(
    control_plane: ControlPlane, unique_namespace: str, tmp_path: Path
) -> None:
    chart = _write_chart(tmp_path)
    installed = control_plane.helm("install", "demo", str(chart), "-n", unique_namespace)
    _ok(installed)
    got = control_plane.kubectl(
        "get", "configmap", "demo-tiny", "-n", unique_namespace, "-o", "json"
    )
    _ok(got)
    data = json.loads(got.stdout)["data"]
    assert data["greeting"] == "hello"
    assert data["kubeVersion"].startswith("v1.36."), data  # Capabilities from the real /version

    listed = control_plane.helm("list", "-n", unique_namespace, "-o", "json")
    _ok(listed)
    assert [r["name"] for r in json.loads(listed.stdout)] == ["demo"]


def test_rbac_denies_user_without_roles(control_plane: ControlPlane, unique_namespace: str) -> None:
    denied = control_plane.kubectl("--as=nobody", "get", "configmaps", "-n", unique_namespace)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower(), denied.stderr
    assert 'User "nobody"' in denied.stderr

    can_i = control_plane.kubectl("auth", "can-i", "create", "pods", "--as=nobody")
    assert can_i.stdout.strip() == "no"

    # Grant exactly one permission and see RBAC honour it.
    _ok(
        control_plane.kubectl(
            "create",
            "role",
            "cm-reader",
            "--verb=get,list",
            "--resource=configmaps",
            "-n",
            unique_namespace,
        )
    )
    _ok(
        control_plane.kubectl(
            "create",
            "rolebinding",
            "nobody-reads",
            "--role=cm-reader",
            "--user=nobody",
            "-n",
            unique_namespace,
        )
    )
    # The RBAC authorizer reads bindings from an informer: poll briefly, with a deadline.
    allowed = _eventually(
        lambda: control_plane.kubectl("--as=nobody", "get", "configmaps", "-n", unique_namespace)
    )
    _ok(allowed)
    still_denied = control_plane.kubectl("--as=nobody", "get", "secrets", "-n", unique_namespace)
    assert still_denied.returncode != 0
    assert "forbidden" in still_denied.stderr.lower()
