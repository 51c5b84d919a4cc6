"""The Helm chart under test: render it with the real helm, and keep its generated parts in sync.

The chart carries copies of files generated elsewhere (Helm reads only files inside the chart):
the RateLimitPolicy CRD (`k8s/crds/`) and the Grafana dashboards (`grafana/dashboards/`). Its
README's values table is generated from the `# --` comments of values.yaml. Tests fail when any of
them is stale; one command brings them back in line:

    python -m tests.support.chart sync     # copy the CRD and dashboards, regenerate the README
    python -m tests.support.chart check    # exit 1 and name what is stale
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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

CRD_SOURCE = REPO_ROOT / "k8s" / "crds"
DASHBOARD_SOURCE = REPO_ROOT / "grafana" / "dashboards"
README = CHART / "README.md"
TABLE_BEGIN = "<!-- values-table:begin (python -m tests.support.chart sync) -->"
TABLE_END = "<!-- values-table:end -->"

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


# ------------------------------------------------------------------------------ copies


def copy_pairs() -> list[tuple[Path, Path]]:
    """(generated source, chart copy) for every file the chart must carry."""
    pairs = [(src, CHART / "crds" / src.name) for src in sorted(CRD_SOURCE.glob("*.yaml"))]
    pairs += [
        (src, CHART / "dashboards" / src.name) for src in sorted(DASHBOARD_SOURCE.glob("*.json"))
    ]
    return pairs


def stale_copies() -> list[str]:
    """What differs between the generated files and the chart's copies (empty when in sync)."""
    problems: list[str] = []
    pairs = copy_pairs()
    for src, copy in pairs:
        rel = copy.relative_to(REPO_ROOT)
        if not copy.is_file():
            problems.append(f"{rel} is missing (source {src.relative_to(REPO_ROOT)})")
        elif copy.read_bytes() != src.read_bytes():
            problems.append(f"{rel} differs from {src.relative_to(REPO_ROOT)}")
    expected = {copy for _, copy in pairs}
    for folder, pattern in (("crds", "*.yaml"), ("dashboards", "*.json")):
        for extra in sorted((CHART / folder).glob(pattern)):
            if extra not in expected:
                problems.append(f"{extra.relative_to(REPO_ROOT)} has no source any more")
    return problems


def sync_copies() -> None:
    pairs = copy_pairs()
    expected = {copy for _, copy in pairs}
    for folder, pattern in (("crds", "*.yaml"), ("dashboards", "*.json")):
        for extra in (CHART / folder).glob(pattern):
            if extra not in expected:
                extra.unlink()
    for src, copy in pairs:
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, copy)


# ------------------------------------------------------------------------------ values table

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")


def documented_values(values_yaml: Path = CHART / "values.yaml") -> list[tuple[str, str]]:
    """(dotted key, description) for every key preceded by a `# --` comment, in file order."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] | None = None
    for line in values_yaml.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if comment is not None:
                comment.append(stripped[1:].strip())
            continue
        match = _KEY.match(line)
        if not match:
            if not stripped.startswith("-"):
                comment = None
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if comment is not None:
            found.append((".".join(key for _, key in stack), " ".join(comment)))
        comment = None
    return found


def _lookup(values: Mapping[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node[part]
    return node


def values_table() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = ["| Key | Default | Description |", "|---|---|---|"]
    for key, description in documented_values():
        default = json.dumps(_lookup(values, key), separators=(", ", ": "), ensure_ascii=False)
        cell, text = default.replace("|", "\\|"), description.replace("|", "\\|")
        rows.append(f"| `{key}` | `{cell}` | {text} |")
    return "\n".join(rows)


def readme_with_table(readme: str) -> str:
    begin, end = readme.index(TABLE_BEGIN), readme.index(TABLE_END)
    return f"{readme[: begin + len(TABLE_BEGIN)]}\n{values_table()}\n{readme[end:]}"


def readme_is_current() -> bool:
    text = README.read_text()
    return readme_with_table(text) == text


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["sync"]:
        sync_copies()
        README.write_text(readme_with_table(README.read_text()))
        print("chart copies and README values table are in sync")
        return 0
    if args == ["check"]:
        problems = stale_copies()
        if not readme_is_current():
            problems.append(f"{README.relative_to(REPO_ROOT)}: the values table is stale")
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python -m tests.support.chart sync", file=sys.stderr)
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
