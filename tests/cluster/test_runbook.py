"""docs/operations.md's step-by-step section, run as written: every ```sh block between the
runbook markers, in order, in one bash, from the repository root. It ends with `make cluster-down`,
so it runs last (see conftest) and only on a cluster this session started."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from scripts.cluster.cluster import Cluster

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "operations.md"
_SECTION = re.compile(r"<!-- runbook:start.*?-->(.*?)<!-- runbook:end -->", re.DOTALL)
_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def runbook_blocks(page: str) -> list[str]:
    section = _SECTION.search(page)
    assert section, "docs/operations.md lost its runbook markers"
    return _BLOCK.findall(section.group(1))


def test_the_page_has_the_steps() -> None:
    blocks = runbook_blocks(PAGE.read_text())
    assert len(blocks) == 6
    assert "make -s cluster |" in blocks[0]
    assert blocks[-1].strip() == "make -s cluster-down"


def test_runbook_runs_as_written(cluster: Cluster, cluster_is_ours: bool) -> None:
    if not cluster_is_ours:
        pytest.skip(
            "the runbook ends with `make cluster-down`: it runs only on a cluster it may remove"
        )
    blocks = runbook_blocks(PAGE.read_text())
    script = "set -euo pipefail\nset -x\n" + "\n".join(blocks)
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DOCKER_HOST")}
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=1500, check=False,
    )  # fmt: skip
    out = done.stdout
    print(out[-6000:])
    assert done.returncode == 0, f"{out[-4000:]}\n{done.stderr[-6000:]}"
    assert re.search(r"^NAME\s+STATUS.*\n\S+\s+Ready\b", out, re.MULTILINE), "node not Ready"
    assert re.search(r'^\{"status":"ok","degraded":\[\]\}$', out, re.MULTILINE), "not ready"
    assert re.search(r'"email":\s*"ada-\d+@example\.com"', out), "the user was not created"
    hpa = re.search(
        r"^floodgate\s+Deployment/floodgate\s+.*?\s(\d+)\s+(\d+)\s+(\d+)\s+\S+$", out, re.M
    )
    assert hpa, "kubectl get hpa printed no floodgate row"
    assert hpa.group(1, 2, 3) == ("1", "2", "2"), hpa.group(0)
    assert re.search(r"^\[load\] \d+ requests in .* 0 failed$", out, re.MULTILINE), "load failed"
    assert re.search(r"^ratelimitpolicy\.floodgate\.dev/reads condition met$", out, re.MULTILINE), (
        "not Programmed"
    )
    assert re.search(r"^ratelimit-policy:", out, re.MULTILINE | re.IGNORECASE), "no headers"
    assert out.count("docs/dashboards/") == 4
    assert "[cluster] removed" in out
    assert not cluster.running()
