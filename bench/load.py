"""Measured servers (pinned to core 0), the load generator (wrk, pinned to core 1), peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.infra import free_port, stop_process

SERVER_CORE = "0"
LOAD_CORE = "1"
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self, tail: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc, timeout=15.0)


def start_server(
    name: str,
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    logdir: Path,
    port: int | None = None,
) -> Server:
    """Start `argv` (which must listen on `port`) pinned to the server core; does not wait."""
    port = port or free_port()
    log = logdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *[a.replace("{port}", str(port)) for a in argv]],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Server(name=name, port=port, proc=proc, log=log)


def wait_healthy(server: Server, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(
                f"{server.name} exited ({server.proc.returncode}):\n{server.output()}"
            )
        try:
            with urllib.request.urlopen(server.url(path), timeout=2) as resp:
                if resp.status < 400:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{server.name} not healthy after {timeout}s:\n{server.output()}")


# --------------------------------------------------------------------------- RSS


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def tree_rss(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, in bytes."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            continue
        stack.extend(_children(p))
    return total


class RssSampler:
    """Samples the process tree's RSS every `interval` seconds while in its `with` block."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.pid))


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class Load:
    """What wrk sends: a fixed request, or GETs of `{path}{random id in id_range}`."""

    path: str
    method: str = "GET"
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    id_range: tuple[int, int] | None = None

    def describe(self) -> str:
        if self.id_range:
            lo, hi = self.id_range
            return f"{self.method} {self.path}{{random {lo}..{hi}}}"
        return f"{self.method} {self.path}"


_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


def _lua_str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for ASCII


def lua_script(load: Load) -> str:
    lines = ["-- generated by bench/load.py"]
    lines.append(f"wrk.method = {_lua_str(load.method)}")
    if load.body is not None:
        lines.append(f"wrk.body = {_lua_str(load.body)}")
    for name, value in load.headers.items():
        lines.append(f"wrk.headers[{_lua_str(name)}] = {_lua_str(value)}")
    if load.id_range:
        lo, hi = load.id_range
        lines.append("init = function(args) math.randomseed(os.time()) end")
        lines.append(
            f"request = function() return wrk.format(nil, {_lua_str(load.path)} .. "
            f"math.random({lo}, {hi})) end"
        )
    return "\n".join(lines) + "\n" + _DONE


@dataclass
class Measurement:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non2xx: int
    peak_rss_mb: float

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def run_wrk(
    server: Server,
    load: Load,
    *,
    duration_s: float,
    scriptdir: Path,
    connections: int = 64,
) -> Measurement:
    script = scriptdir / f"{server.name}.lua"
    script.write_text(lua_script(load))
    path = load.path if not load.id_range else "/"
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration_s}s"]
    argv += ["--timeout", "5s", "-s", str(script), server.url(path)]
    with RssSampler(server.proc.pid) as rss:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    r = json.loads(line.removeprefix("BENCHJSON "))
    seconds = r["duration_us"] / 1e6
    return Measurement(
        requests=r["requests"],
        duration_s=round(seconds, 3),
        rps=round(r["requests"] / seconds, 1),
        p50_ms=r["p50"] / 1000,
        p90_ms=r["p90"] / 1000,
        p99_ms=r["p99"] / 1000,
        max_ms=r["max"] / 1000,
        errors=r["connect"] + r["read"] + r["write"] + r["timeout"],
        non2xx=r["status"],
        peak_rss_mb=round(rss.peak / 2**20, 1),
    )
