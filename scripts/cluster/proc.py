"""Daemons the cluster starts: detached (they outlive `make cluster`), recorded by pid,
stopped by pid.

A pid alone can be reused after its process died, so each record also keeps the process's start
time (field 22 of /proc/<pid>/stat): `stop` signals a pid only while it is still that process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Daemon:
    name: str
    pid: int
    started: int  # /proc/<pid>/stat start time, in clock ticks since boot
    log: str

    def alive(self) -> bool:
        return start_time(self.pid) == self.started

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "pid": self.pid, "started": self.started, "log": self.log}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Daemon:
        return cls(
            str(data["name"]), int(str(data["pid"])), int(str(data["started"])), str(data["log"])
        )


def start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None  # a zombie is dead for our purposes
    return int(fields[19])


def spawn(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Daemon:
    """Start `argv` in its own session, output appended to `<log_dir>/<name>.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not killed with the shell or pytest that started it
            env=dict(env) if env is not None else None,
            cwd=cwd,
        )
    started = start_time(proc.pid)
    if started is None:
        raise RuntimeError(f"{name} exited at once: see {log_path}")
    return Daemon(name, proc.pid, started, str(log_path))


def stop(daemon: Daemon, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; only while the pid is still this daemon."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not daemon.alive():
            return
        try:
            os.kill(daemon.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(daemon.pid)
            if not daemon.alive():
                return
            time.sleep(0.05)


def _reap(pid: int) -> None:
    """Collect our own child's exit status (a detached child of this process would stay a
    zombie).
    """
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def tail(path: str | Path, limit: int = 4000) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "<no log>"
    return text if len(text) <= limit else "…" + text[-limit:]
