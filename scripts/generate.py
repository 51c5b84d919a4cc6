"""Write every generated file of the repository, or (`--check`) name the ones that are stale.

    .venv/bin/python scripts/generate.py          # `make generate`
    .venv/bin/python scripts/generate.py --check  # `make lint`: exit 1 and name what is stale

Generated: the Grafana dashboards (grafana/dashboards/*.json, from grafana/gen/), the
RateLimitPolicy CRD (k8s/crds/, from the policy model), the chart's copies of both (Helm reads
only files inside the chart) and the values table of the chart's README (from the `# --`
comments of values.yaml).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CHART = REPO_ROOT / "helm" / "floodgate"
CRD_SOURCE = REPO_ROOT / "k8s" / "crds"
DASHBOARD_SOURCE = REPO_ROOT / "grafana" / "dashboards"
DASHBOARD_PACKAGE = REPO_ROOT / "grafana" / "gen"
README = CHART / "README.md"
TABLE_BEGIN = "<!-- values-table:begin (make generate) -->"
TABLE_END = "<!-- values-table:end -->"
HINT = "run: make generate"

# ------------------------------------------------------------------------------ sources


def load_dashboards() -> ModuleType:
    """grafana/gen, imported from its path: the repository root is not on sys.path here."""
    init = DASHBOARD_PACKAGE / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "floodgate_dashboards", init, submodule_search_locations=[str(DASHBOARD_PACKAGE)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def generated_sources() -> dict[Path, str]:
    """Path -> text of every file generated from code (the chart copies follow from these)."""
    # Imported here, not at the top: the chart tests use this module's checks without needing the
    # service package (and everything the policy model imports) to load.
    from floodgate.operator.crd import CRD_FILE, render_yaml

    dashboards: dict[str, str] = load_dashboards().build()
    files = {DASHBOARD_SOURCE / name: text for name, text in dashboards.items()}
    files[REPO_ROOT / CRD_FILE] = render_yaml()
    return files


def stale_sources(files: Mapping[Path, str]) -> list[str]:
    problems = [
        f"{path.relative_to(REPO_ROOT)} is out of date"
        for path, text in files.items()
        if not path.is_file() or path.read_text() != text
    ]
    extra = sorted(set(DASHBOARD_SOURCE.glob("*.json")) - files.keys())
    problems += [f"{path.relative_to(REPO_ROOT)} is not generated" for path in extra]
    return problems


def write_sources(files: Mapping[Path, str]) -> None:
    for extra in set(DASHBOARD_SOURCE.glob("*.json")) - files.keys():
        extra.unlink()
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


# ------------------------------------------------------------------------------ chart copies


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


# ------------------------------------------------------------------------------ command line


def generate() -> None:
    # Sources first: the chart copies are taken from the files just written.
    write_sources(generated_sources())
    sync_copies()
    README.write_text(readme_with_table(README.read_text()))


def check() -> list[str]:
    problems = stale_sources(generated_sources()) + stale_copies()
    if not readme_is_current():
        problems.append(f"{README.relative_to(REPO_ROOT)}: the values table is stale")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == []:
        generate()
        print("wrote the dashboards, the CRD, their chart copies and the chart README table")
        return 0
    if args == ["--check"]:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(HINT, file=sys.stderr)
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
