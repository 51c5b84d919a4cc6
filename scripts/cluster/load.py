"""Bounded load through a Service: a few threads, one request per connection (so each request is
routed afresh by kube-proxy, as a client behind a load balancer would be), counting outcomes.
Stops by itself at `max_seconds` or `max_requests`, or when `stop()` is called.

`python -m scripts.cluster load URL` runs one from the command line (the runbook does)."""

from __future__ import annotations

import http.client
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Outcome:
    requests: int = 0
    ok: int = 0
    failed: int = 0
    samples: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    ended: float = 0.0

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def summary(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (
            f"{self.requests} requests in {self.seconds:.1f} s ({rate:.0f}/s), {self.failed} failed"
        )


class Load:
    def __init__(
        self,
        base_url: str,
        paths: list[str],
        threads: int = 4,
        max_seconds: float = 240.0,
        max_requests: int = 200_000,
        expect: frozenset[int] = frozenset({200}),
        pause: float = 0.0,  # seconds each thread waits between requests (a light, steady load)
    ) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "", parts.port or 80
        self.paths = paths
        self.expect = expect
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.pause = pause
        self.outcome = Outcome()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> Load:
        self.outcome = Outcome()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Outcome:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        if not self.outcome.ended:
            self.outcome.ended = time.monotonic()
        return self.outcome

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        i = index
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if self.outcome.requests >= self.max_requests:
                    return
                self.outcome.requests += 1
            if self.pause:
                self._stop.wait(self.pause)
            path = self.paths[i % len(self.paths)]
            i += 1
            problem = self._one(path)
            with self._lock:
                if problem is None:
                    self.outcome.ok += 1
                else:
                    self.outcome.failed += 1
                    if len(self.outcome.samples) < 20:
                        self.outcome.samples.append(
                            f"{time.monotonic() - self.outcome.started:.1f}s {path}: {problem}"
                        )

    def _one(self, path: str) -> str | None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            resp.read()
            return None if resp.status in self.expect else f"HTTP {resp.status}"
        except (OSError, http.client.HTTPException) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()


def run_cli(base_url: str, paths: list[str], seconds: float, threads: int) -> int:
    """Load until `seconds` pass or SIGTERM/SIGINT arrives; prints the tally; 1 if any failed."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with Load(base_url, paths, threads=threads, max_seconds=seconds) as load:
        stop.wait(seconds)
    outcome = load.outcome
    print(f"[load] {outcome.summary()}")
    for sample in outcome.samples:
        print(f"[load] failed: {sample}", file=sys.stderr)
    return 1 if outcome.failed else 0
