"""`make cluster-install`: build and push the images, deploy k8s/dev/ and `helm install --wait` the
chart into namespace `floodgate`, the way a user would on any cluster (only image references and
sizes differ from the defaults; both are ordinary values)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.cluster import config as c
from scripts.cluster import images
from scripts.cluster.cluster import Cluster, ClusterError, log

NAMESPACE = "floodgate"
RELEASE = "floodgate"
CHART = c.REPO_ROOT / "helm" / "floodgate"
DEV_MANIFESTS = (
    c.REPO_ROOT / "k8s" / "dev" / "postgres.yaml",
    c.REPO_ROOT / "k8s" / "dev" / "redis.yaml",
)
# The public images k8s/dev/ and the chart's defaults name, and the role of the local image that
# stands in for each (a test checks that nothing else is named).
DEV_IMAGES = {"postgres:17.2-alpine": "postgres", "redis:7.4.2-alpine": "redis"}


@dataclass(frozen=True)
class Installed:
    images: dict[str, str]  # role -> ref in the cluster registry
    values_file: Path
    service_url: str
    timings: dict[str, float]


def split_ref(ref: str) -> tuple[str, str]:
    repository, _, tag = ref.rpartition(":")
    return repository, tag


def cluster_values(refs: dict[str, str], replicas: int = 2) -> dict[str, object]:
    """Chart values for this one-node, 2-core cluster: the local images, small requests."""
    app_repo, app_tag = split_ref(refs["floodgate"])
    redis_repo, redis_tag = split_ref(refs["redis"])
    redis_image = {"repository": redis_repo, "tag": redis_tag}
    return {
        "image": {"repository": app_repo, "tag": app_tag},
        "sharedRedis": {
            "existingSecret": "floodgate-shared-redis",
            "internal": {"image": redis_image},
        },
        "cacheSidecar": {
            "image": redis_image,
            "resources": {
                "requests": {"cpu": "20m", "memory": "64Mi"},
                "limits": {"memory": "192Mi"},
            },
        },
        "api": {
            "replicas": replicas,
            "workers": 2,  # two processes, two L1s: the second reader finds the sidecar (L2)
            "resources": {
                "requests": {"cpu": "200m", "memory": "192Mi"},
                "limits": {"memory": "512Mi"},
            },
        },
        "operator": {
            "resources": {
                "requests": {"cpu": "20m", "memory": "96Mi"},
                "limits": {"memory": "256Mi"},
            }
        },
        "worker": {
            "resources": {
                "requests": {"cpu": "50m", "memory": "96Mi"},
                "limits": {"memory": "384Mi"},
            }
        },
        "database": {"migrations": {"resources": {"requests": {"cpu": "50m", "memory": "96Mi"}}}},
    }


def dev_manifests(refs: dict[str, str]) -> str:
    """k8s/dev/ with each public image replaced by the locally built stand-in."""
    docs = []
    for path in DEV_MANIFESTS:
        text = path.read_text()
        for public, role in DEV_IMAGES.items():
            text = re.sub(rf"(image:\s*){re.escape(public)}\b", rf"\g<1>{refs[role]}", text)
        docs.append(text)
    return "\n---\n".join(docs)


def build_and_push(cluster: Cluster) -> tuple[dict[str, str], dict[str, float]]:
    if not cluster.running():
        raise ClusterError("no cluster is running: `make cluster` first")
    logfile = cluster.layout.logs / "images.log"
    built, timings = images.build_app_images(logfile, "build")
    # Content-addressed tags: a rebuilt image gets a new tag, so pods roll and nothing stale is
    # reused.
    podman = images.Podman(logfile)
    tagged = {}
    for role, ref in built.items():
        image_id = podman.run("image", "inspect", "--format", "{{.Id}}", ref).strip()[:12]
        repository = ref.rpartition(":")[0]
        podman.run("tag", ref, f"{repository}:id-{image_id}")
        tagged[role] = f"{repository}:id-{image_id}"
    t = time.monotonic()
    pushed = images.push_refs(logfile, tagged, cluster.registry)
    publish_public_names(podman, built, cluster.registry)
    timings["push"] = round(time.monotonic() - t, 1)
    return pushed, timings


def publish_public_names(podman: images.Podman, built: dict[str, str], registry: str) -> list[str]:
    """Push each stand-in under the public name it replaces (`library/redis:7.4.2-alpine`): the
    node mirrors docker.io from this registry, so the unmodified manifests `skaffold run` deploys
    pull them."""
    published = []
    for public, role in DEV_IMAGES.items():
        remote = f"{registry}/library/{public}"
        podman.run("push", "--tls-verify=false", built[role], f"docker://{remote}")
        published.append(remote)
    return published


def install(cluster: Cluster, replicas: int = 2, timeout_s: int = 600) -> Installed:
    if not cluster.running():
        raise ClusterError("no cluster is running: `make cluster` first")
    began = time.monotonic()
    refs, timings = build_and_push(cluster)
    log(f"images pushed: {', '.join(refs.values())}")
    cluster.kubectl("create", "namespace", NAMESPACE)  # may exist already
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=dev_manifests(refs), check=True)
    for name in ("floodgate-dev-postgres", "floodgate-dev-redis"):
        cluster.kubectl(
            "-n",
            NAMESPACE,
            "rollout",
            "status",
            f"deployment/{name}",
            f"--timeout={timeout_s}s",
            check=True,
        )
    timings["dev-dependencies"] = round(time.monotonic() - began - sum(timings.values()), 1)
    values = cluster.layout.etc / "values-cluster.json"
    values.write_text(json.dumps(cluster_values(refs, replicas), indent=2))
    t = time.monotonic()
    # A release whose first install failed cannot be upgraded: start it over (what a user does).
    status = cluster.helm("status", RELEASE, "-n", NAMESPACE, "-o", "json")
    if status.returncode == 0 and json.loads(status.stdout)["info"]["status"] != "deployed":
        cluster.helm("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=True)
    cluster.helm(
        "upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(values),
        "--wait", f"--timeout={timeout_s}s", timeout=timeout_s + 60, check=True,
    )  # fmt: skip
    timings["helm-install"] = round(time.monotonic() - t, 1)
    ip = cluster.kubectl(
        "-n", NAMESPACE, "get", "service", RELEASE, "-o", "jsonpath={.spec.clusterIP}", check=True
    )
    port = cluster.kubectl(
        "-n", NAMESPACE, "get", "service", RELEASE,
        "-o", "jsonpath={.spec.ports[0].port}", check=True,
    )  # fmt: skip
    url = f"http://{ip.stdout.strip()}:{port.stdout.strip()}"
    timings["total"] = round(time.monotonic() - began, 1)
    return Installed(refs, values, url, timings)
