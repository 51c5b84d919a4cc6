"""Drive the real skaffold binary against the test cluster: a copy of the tree to work in, the
environment a user would have after `make cluster`, and a running `skaffold` whose output lines are
timestamped as they arrive (so the tests can report build, deploy and sync times)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from scripts.cluster import config as c
from scripts.cluster.cluster import Cluster

SKAFFOLD = c.TOOLS_BIN / "skaffold"
HELM3_DIR = c.REPO_ROOT / ".tools" / "helm3"
PORT_FORWARD = re.compile(
    r"Port forwarding service/floodgate in namespace \S+, remote port 80 -> http://127\.0\.0\.1:(\d+)"
)


def copy_tree(dest: Path) -> Path:
    """The working tree (tracked and untracked, not ignored) copied to `dest` and committed, so
    skaffold's gitCommit tagger has a commit and the dev test's edit never touches the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=c.REPO_ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        src = c.REPO_ROOT / name
        if src.is_file():  # a deleted file is still listed by --cached
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git = ["git", "-c", "user.name=floodgate-tests", "-c", "user.email=tests@floodgate.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "snapshot for skaffold"]):
        subprocess.run([*git, *args], cwd=dest, check=True, capture_output=True)
    return dest


def environment(cluster: Cluster, home: Path) -> dict[str, str]:
    """What `make cluster` tells a user to export, plus helm 3 first on PATH (skaffold 2.16 needs
    it) and a HOME of its own for skaffold's global config and cache."""
    env = {**cluster.env(), **cluster.exports()}
    env.update(
        PATH=f"{HELM3_DIR}:{c.TOOLS_BIN}:{env['PATH']}",
        HOME=str(home),
        SKAFFOLD_UPDATE_CHECK="false",
        SKAFFOLD_INTERACTIVE="false",
    )
    return env


@dataclass
class Line:
    at: float  # time.monotonic() when read
    text: str


@dataclass
class Skaffold:
    """One running `skaffold …` in its own process group, output kept with arrival times."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    log: Path
    started: float = 0.0
    lines: list[Line] = field(default_factory=list)
    _proc: subprocess.Popen[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Skaffold:
        self.started = time.monotonic()
        self._proc = subprocess.Popen(
            [str(SKAFFOLD), *self.argv], cwd=self.cwd, env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stdout is not None
        with self.log.open("a") as out:
            for text in self._proc.stdout:
                now = time.monotonic()
                out.write(f"{now - self.started:8.2f} {text}")
                out.flush()
                with self._lock:
                    self.lines.append(Line(now, text.rstrip("\n")))

    def wait_for(
        self, pattern: str | re.Pattern[str], timeout: float, after: float = 0.0
    ) -> tuple[re.Match[str], float]:
        """The first line matching `pattern` read after `after`; fails if skaffold exits first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self._lock:
                fresh = self.lines[seen:]
                seen = len(self.lines)
            for line in fresh:
                if line.at >= after and (m := regex.search(line.text)):
                    return m, line.at
            if self.returncode() is not None and seen == len(self.lines):
                code = self.returncode()
                raise AssertionError(
                    f"skaffold exited ({code}) before {regex.pattern!r}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no {regex.pattern!r} within {timeout} s:\n{self.tail()}")
            time.sleep(0.1)

    def count(self, pattern: str, after: float = 0.0) -> int:
        regex = re.compile(pattern)
        with self._lock:
            return sum(1 for line in self.lines if line.at >= after and regex.search(line.text))

    def tail(self, n: int = 40) -> str:
        with self._lock:
            return "\n".join(line.text for line in self.lines[-n:])

    def returncode(self) -> int | None:
        assert self._proc is not None
        return self._proc.poll()

    def interrupt(self, timeout: float) -> int:
        """Ctrl+C, as a user stops `skaffold dev`; waits for skaffold's own cleanup to finish."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGINT)
        return self._proc.wait(timeout=timeout)

    def kill(self) -> None:
        """Only if a test failed midway: skaffold and whatever it started (its process group)."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=30)


def run(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SKAFFOLD), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
