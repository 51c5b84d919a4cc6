"""Run `floodgate serve` as a real process on a free loopback port, stopped by its pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.services import free_port

REPO = Path(__file__).resolve().parents[2]
FLOODGATE = Path(sys.executable).with_name("floodgate")


@dataclass
class ServerProcess:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


def start_server(
    env: dict[str, str], workdir: Path, *, workers: int = 1, timeout: float = 30.0
) -> ServerProcess:
    port = free_port()
    log = workdir / f"server-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_")}
    full_env.update(env)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(FLOODGATE), "serve", "--port", str(port), "--workers", str(workers)],
            cwd=workdir,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(port=port, proc=proc, log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=0.5).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.05)
    server.terminate()
    raise TimeoutError(f"server not healthy after {timeout}s:\n{server.output()}")
