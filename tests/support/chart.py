"""The Helm chart under test: render it with the real helm and pick the rendered objects apart.

Its generated parts (CRD and dashboard copies, the README's values table) are written and checked
by scripts/generate.py (`make generate`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "floodgate"
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
HELM = TOOLS_BIN / "helm"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))

# APIs of cluster add-ons the chart can use; told to `helm template` as if the cluster served them.
ADDON_APIS = ("monitoring.coreos.com/v1", "keda.sh/v1alpha1")

Manifest = dict[str, Any]


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its stderr."""

    def __init__(self, args: Sequence[str], stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} failed:\n{stderr}")
        self.stderr = stderr


def helm_missing() -> str | None:
    """Why helm cannot run here, or None."""
    if not os.access(HELM, os.X_OK):
        return f"{HELM} is missing: run `make tools`"
    return None


def run_helm(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run helm (never raises on a non-zero exit)."""
    return subprocess.run(
        [str(HELM), *args],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )


def template_args(
    *,
    values_files: Iterable[Path] = (),
    set_values: Mapping[str, str] = {},
    api_versions: Iterable[str] = (),
    release: str = "floodgate",
    namespace: str = "floodgate",
    extra: Iterable[str] = (),
) -> list[str]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    for path in values_files:
        args += ["--values", str(path)]
    for key, value in set_values.items():
        args += ["--set", f"{key}={value}"]
    for api in api_versions:
        args += ["--api-versions", api]
    return [*args, *extra]


def render(
    *,
    values_files: Iterable[Path] = (),
    set_values: Mapping[str, str] = {},
    api_versions: Iterable[str] = (),
    release: str = "floodgate",
    namespace: str = "floodgate",
    extra: Iterable[str] = (),
) -> list[Manifest]:
    """`helm template` the chart; returns the rendered objects (hooks and test pods included)."""
    args = template_args(
        values_files=values_files,
        set_values=set_values,
        api_versions=api_versions,
        release=release,
        namespace=namespace,
        extra=extra,
    )
    done = run_helm(*args)
    if done.returncode != 0:
        raise HelmError(args, done.stderr)
    return parse_manifests(done.stdout)


def render_failure(**kwargs: Any) -> str:
    """Render values that must be refused; returns helm's error output."""
    try:
        render(**kwargs)
    except HelmError as exc:
        return exc.stderr
    raise AssertionError(f"helm template accepted {kwargs}")


def parse_manifests(text: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]


def one(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def kinds(manifests: Iterable[Manifest]) -> set[str]:
    return {m["kind"] for m in manifests}


def is_hook(manifest: Manifest) -> bool:
    return "helm.sh/hook" in (manifest["metadata"].get("annotations") or {})


@dataclass(frozen=True)
class PodTemplate:
    """A pod as the chart would create it: from a Deployment/Job template, or a bare Pod."""

    owner: str  # "Deployment/floodgate"
    metadata: dict[str, Any]
    spec: dict[str, Any]

    def containers(self) -> Iterator[dict[str, Any]]:
        yield from self.spec.get("initContainers") or []
        yield from self.spec["containers"]

    def container(self, name: str) -> dict[str, Any]:
        for container in self.containers():
            if container["name"] == name:
                return container
        raise KeyError(f"{self.owner} has no container {name!r}")

    def as_pod(self, name: str, namespace: str) -> Manifest:
        metadata = {k: v for k, v in self.metadata.items() if k in ("labels", "annotations")}
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {**metadata, "name": name, "namespace": namespace},
            "spec": self.spec,
        }


def pod_templates(manifests: Iterable[Manifest]) -> list[PodTemplate]:
    found: list[PodTemplate] = []
    for m in manifests:
        owner = f"{m['kind']}/{m['metadata']['name']}"
        if m["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            template = m["spec"]["template"]
            found.append(PodTemplate(owner, template.get("metadata") or {}, template["spec"]))
        elif m["kind"] == "Pod":
            found.append(PodTemplate(owner, m["metadata"], m["spec"]))
    return found


def env_of(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env") or []}
