"""Start real PostgreSQL and Redis servers on free loopback ports, in throwaway directories.

Each server is started by this process and stopped by pid; nothing else on the machine is touched.
`scripts/ensure-services.sh` (run by `make test`) installs the Debian packages when missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _stop_pid(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@dataclass
class RedisServer:
    """A redis-server process started by the tests (no persistence)."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run scripts/ensure-services.sh")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop_pid(self.proc)
            self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port: data and the script cache are gone."""
        self.stop()
        self.start()


def start_redis() -> RedisServer:
    workdir = Path(tempfile.mkdtemp(prefix="floodgate-redis-"))
    return RedisServer(port=free_port(), workdir=workdir).start()


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    if found:
        return found
    raise RuntimeError(f"{name} not found: run scripts/ensure-services.sh")


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster run as the `postgres` user when we are root."""

    port: int
    datadir: Path
    _as_user: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its async SQLAlchemy URL."""
        subprocess.run(["psql", self.dsn(), "-qc", f"CREATE DATABASE {name}"], check=True)
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def start(self) -> PostgresServer:
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root.
            shutil.chown(self.datadir, user="postgres", group="postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *self._as_user,
                _pg_bin("initdb"),
                "-D",
                str(self.datadir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        return self.resume()

    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
            # Lets tests count the statements the service really ran.
            "-c shared_preload_libraries=pg_stat_statements"
        )

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [*self._as_user, _pg_bin("pg_ctl"), "-D", str(self.datadir), *args],
            check=True,
            capture_output=True,
        )

    def resume(self) -> PostgresServer:
        """Start the server on its existing data directory (after `start` and `halt`)."""
        self._pg_ctl("-o", self._options(), "-l", str(self.datadir / "server.log"), "-w", "start")
        wait_for_port(self.port)
        return self

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: sessions are terminated ("terminating connection due to
        administrator command"), then the server starts again ("the database system is starting
        up" until it is ready)."""
        self._pg_ctl(
            "-o",
            self._options(),
            "-l",
            str(self.datadir / "server.log"),
            "-m",
            "fast",
            "-w",
            "restart",
        )
        wait_for_port(self.port)

    def halt(self) -> None:
        """Stop the server (an outage), keeping its data for `resume`."""
        pg_ctl = [*self._as_user, _pg_bin("pg_ctl"), "-D", str(self.datadir)]
        subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], check=False, capture_output=True)

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.datadir, ignore_errors=True)


def start_postgres() -> PostgresServer:
    base = Path(tempfile.mkdtemp(prefix="floodgate-pg-"))
    os.chmod(base, 0o755)
    datadir = base / "data"
    datadir.mkdir()
    return PostgresServer(port=free_port(), datadir=datadir).start()
