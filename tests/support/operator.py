"""Run `floodgate operator` as a real process for the k8s tests, and wait on observable state."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

from tests.support.server import FLOODGATE
from tests.support.services import free_port

T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> tuple[T, float]:
    """Poll until `check` returns something truthy; returns it and the seconds it took."""
    began = time.monotonic()
    while True:
        result = check()
        if result:
            return result, time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@dataclass
class OperatorProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> str:
        """SIGTERM (SIGKILL after 20 s); returns the operator's log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.log.read_text(errors="replace")


def start_operator(
    env: Mapping[str, str], workdir: Path, args: Sequence[str] = ("operator",)
) -> OperatorProcess:
    """`floodgate <args>` with its liveness endpoint on a free loopback port, once it answers."""
    argv = list(args)
    port = free_port()
    if "--liveness-port" in argv:
        argv[argv.index("--liveness-port") + 1] = str(port)
    else:
        argv += ["--liveness-port", str(port)]
    log = workdir / f"operator-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(FLOODGATE), *argv, "--liveness-host", "127.0.0.1"],
            env=dict(env),
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    operator = OperatorProcess(proc, log)

    def alive() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    eventually(alive, 60, "the operator's liveness endpoint")
    return operator
