"""`skaffold run` and `skaffold dev` on the real cluster, as a user runs them after `make cluster`:
skaffold's Docker builder talks to podman's Docker-compatible API (the cluster's DOCKER_HOST),
pushes to the cluster registry, deploys k8s/dev/ with kubectl and the chart with helm 3, and
forwards the API's Service. k8s/dev/ and the chart name public images (postgres:17.2-alpine,
redis:7.4.2-alpine): the node mirrors docker.io from the cluster registry, where the Debian-made
stand-ins are published under those names, so nothing in skaffold.yaml or the manifests is changed.

Runs in a namespace of its own, in a copy of the tree (the dev test edits a file).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scripts.cluster.cluster import Cluster
from scripts.cluster.install import Installed

from tests.cluster import skaffold
from tests.cluster.test_bundle import RESULTS, http, kget, wait_for

pytestmark = pytest.mark.cluster

NAMESPACE = "floodgate-skaffold"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def workspace(
    cluster: Cluster, installed: Installed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, dict[str, str], Path]]:
    # `installed` built the app image (so podman's layer cache is warm and the python base carries
    # the Dockerfile's default name) and published the stand-ins under their public names.
    root = tmp_path_factory.mktemp("skaffold")
    tree = skaffold.copy_tree(root / "tree")
    (root / "home").mkdir()
    env = skaffold.environment(cluster, root / "home")
    cluster.kubectl("create", "namespace", NAMESPACE)
    try:
        yield tree, env, root
    finally:
        # A skaffold stopped by a failure leaves its release, whose ClusterRoles outlive the
        # namespace (and would count against the uninstall test's release).
        cluster.helm("uninstall", "floodgate", "-n", NAMESPACE, "--wait", timeout=300)
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", timeout=300)


# The registry comes from the environment `make cluster` exports (SKAFFOLD_DEFAULT_REPO, …), as in
# the documented command.
FLAGS = [
    "-p", "podman", f"--namespace={NAMESPACE}",
    "--cache-artifacts=false", "--port-forward=user", "--status-check=true",
]  # fmt: skip


def release_objects(cluster: Cluster) -> list[str]:
    found = kget(
        cluster, "-n", NAMESPACE, "deployments,services,secrets,pods,jobs,configmaps",
        "-l", "app.kubernetes.io/part-of=floodgate",
    )["items"]  # fmt: skip
    return [f"{o['kind']}/{o['metadata']['name']}" for o in found]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def phase_times(proc: skaffold.Skaffold) -> dict[str, float]:
    """Build, push+deploy and ready times from skaffold's own phase lines."""
    _, built = proc.wait_for(r"^Tags used in deployment:", timeout=1)
    _, deploying = proc.wait_for(r"^Starting deploy\.\.\.", timeout=1)
    _, stable = proc.wait_for(r"Deployments stabilized in", timeout=1)
    return {
        "build": round(built - proc.started, 1),
        "deploy": round(stable - deploying, 1),
    }


def test_skaffold_run_deploys_and_the_api_answers_through_the_port_forward(
    cluster: Cluster, workspace: tuple[Path, dict[str, str], Path]
) -> None:
    tree, env, root = workspace
    proc = skaffold.Skaffold(
        ["run", *FLAGS], cwd=tree, env=env, log=root / "skaffold-run.log"
    ).start()
    try:
        match, forwarded = proc.wait_for(skaffold.PORT_FORWARD, timeout=900)
        url = f"http://127.0.0.1:{match.group(1)}"
        wait_for(
            "the API through the port-forward",
            lambda: get_quietly(f"{url}/readyz").startswith(b'{"status":'),
            timeout=60,
        )
        # A real request through the whole stack: the database skaffold deployed, and back.
        email = f"skaffold-{uuid.uuid4().hex[:8]}@example.com"
        created = http("POST", f"{url}/api/v1/users", {"name": "Skaffold", "email": email})
        assert created[0] == 201, created
        user = json.loads(created[2])
        status, body = get(f"{url}/api/v1/users/{user['id']}")
        assert status == 200
        assert json.loads(body)["email"] == email
        times = phase_times(proc)
        times["run-to-answer"] = round(forwarded - proc.started, 1)
        TIMINGS.update({f"run:{k}": v for k, v in times.items()})
        # What it deployed: the image skaffold built and pushed, not the one `installed` made.
        api = kget(cluster, "-n", NAMESPACE, "deployment", "floodgate")
        image = api["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image.startswith(f"{cluster.registry}/floodgate:git-"), image
    finally:
        if proc.returncode() is None:
            proc.interrupt(timeout=60)
        proc.kill()
    # `skaffold run` leaves its deployment in place (by design); `skaffold delete` removes it.
    deleted = skaffold.run(env, tree, "delete", "-p", "podman", f"--namespace={NAMESPACE}")
    assert deleted.returncode == 0, deleted.stderr
    wait_for(
        "skaffold delete to remove the release", lambda: not release_objects(cluster), timeout=180
    )
    print(f"\nskaffold run timings (s): {times}")


def test_skaffold_dev_syncs_an_edit_into_the_running_pod(
    cluster: Cluster, workspace: tuple[Path, dict[str, str], Path]
) -> None:
    tree, env, root = workspace
    proc = skaffold.Skaffold(
        ["dev", *FLAGS], cwd=tree, env=env, log=root / "skaffold-dev.log"
    ).start()
    try:
        match, forwarded = proc.wait_for(skaffold.PORT_FORWARD, timeout=900)
        proc.wait_for(r"Watching for changes", timeout=120)
        url = f"http://127.0.0.1:{match.group(1)}"
        wait_for(
            "the API through the port-forward",
            lambda: get_quietly(f"{url}/healthz") == b'{"status":"ok"}',
            timeout=60,
        )
        (pod,) = api_pods(cluster)
        builds_before = proc.count(r"^Building \[floodgate\]")

        token = uuid.uuid4().hex[:12]
        health = tree / "service" / "floodgate" / "web" / "health.py"
        source = health.read_text()
        edited = source.replace(
            """_OK_BODY = b'{"status":"ok"}'""",
            f"""_OK_BODY = b'{{"status":"ok","edit":"{token}"}}'""",
        )
        assert edited != source, "the edit's anchor moved: update this test"
        edit_at = time.monotonic()
        health.write_text(edited)
        wait_for(
            "the edit served",
            lambda: token.encode() in get_quietly(f"{url}/healthz"),
            timeout=60,
            every=0.2,
        )
        served = time.monotonic() - edit_at
        _, synced = proc.wait_for(r"Syncing 1 files? for", timeout=5, after=edit_at)

        # Copied into every running container of the image (the operator's too), without error.
        assert proc.count(r"sync error|sync failed") == 0, proc.tail()
        # Served by the same pod, without a rebuild or a redeploy.
        assert proc.count(r"^Building \[floodgate\]") == builds_before
        (after,) = api_pods(cluster)
        assert after["metadata"]["uid"] == pod["metadata"]["uid"]
        times = phase_times(proc)
        times.update(
            {
                "dev-to-answer": round(forwarded - proc.started, 1),
                "edit-to-sync": round(synced - edit_at, 2),
                "edit-to-served": round(served, 2),
            }
        )
        TIMINGS.update({f"dev:{k}": v for k, v in times.items()})
        RESULTS["skaffold_seconds"] = dict(TIMINGS)

        # Ctrl+C: skaffold dev removes what it deployed (the chart's release and k8s/dev/).
        stopped_at = time.monotonic()
        code = proc.interrupt(timeout=300)
        assert code == 0, proc.tail()
        wait_for("skaffold dev's cleanup", lambda: not release_objects(cluster), timeout=180)
        TIMINGS["dev:cleanup"] = round(time.monotonic() - stopped_at, 1)
        status = cluster.helm("status", "floodgate", "-n", NAMESPACE)
        assert status.returncode != 0, status.stdout
        assert "not found" in status.stderr
    finally:
        proc.kill()
    print(f"\nskaffold timings (s): {TIMINGS}")


def api_pods(cluster: Cluster) -> list[dict[str, Any]]:
    pods = kget(cluster, "-n", NAMESPACE, "pods", "-l", "app.kubernetes.io/component=api")["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def get_quietly(url: str) -> bytes:
    """The body, or b"" while the server restarts with the synced code (connection refused)."""
    try:
        return get(url)[1]
    except OSError:
        return b""
