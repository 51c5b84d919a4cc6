"""Jaeger and Prometheus processes for the telemetry tests: free loopback ports, stopped by pid."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.server import REPO
from tests.support.services import free_port

JAEGER_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics: {{level: none}}
    logs: {{level: warn}}
extensions:
  healthcheckv2:
    use_v2: true
    http: {{endpoint: "127.0.0.1:{health}"}}
  jaeger_query:
    storage: {{traces: memstore}}
    http: {{endpoint: "127.0.0.1:{query}"}}
    grpc: {{endpoint: "127.0.0.1:{query_grpc}"}}
  jaeger_storage:
    backends:
      memstore:
        memory: {{max_traces: 10000}}
receivers:
  otlp:
    protocols:
      http: {{endpoint: "127.0.0.1:{otlp}"}}
processors:
  batch: {{timeout: 100ms}}
exporters:
  jaeger_storage_exporter: {{trace_storage: memstore}}
"""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} process exited:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s:\n{log.read_text(errors='replace')}")


def jaeger_binary() -> str | None:
    local = REPO / ".tools" / "bin" / "jaeger"
    return str(local) if local.exists() else shutil.which("jaeger")


@dataclass
class Jaeger:
    """Jaeger all-in-one (OTLP/HTTP in, in-memory storage, query API) built by tools-jaeger.sh."""

    otlp_port: int
    query_port: int
    proc: subprocess.Popen[bytes]
    workdir: Path

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.query_port}/api"

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_jaeger(binary: str) -> Jaeger:
    workdir = Path(tempfile.mkdtemp(prefix="floodgate-jaeger-"))
    ports = {k: free_port() for k in ("health", "query", "query_grpc", "otlp")}
    config = workdir / "config.yaml"
    config.write_text(JAEGER_CONFIG.format(**ports))
    log = workdir / "jaeger.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
    try:
        _wait_http(f"http://127.0.0.1:{ports['health']}/status", proc, log)
    except BaseException:
        _stop(proc)
        raise
    return Jaeger(ports["otlp"], ports["query"], proc, workdir)


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: floodgate
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{target}"]
        labels:
          namespace: {namespace}
          service: {service}
          pod: {pod}
          container: floodgate
"""


@dataclass
class Prometheus:
    """A Prometheus server (Debian's package) scraping one target every second, exemplars on."""

    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def stop(self) -> None:
        _stop(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_prometheus(target_port: int, *, namespace: str, service: str, pod: str) -> Prometheus:
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("prometheus not found: run scripts/ensure-prometheus.sh")
    workdir = Path(tempfile.mkdtemp(prefix="floodgate-prometheus-"))
    config = workdir / "prometheus.yml"
    config.write_text(
        PROMETHEUS_CONFIG.format(target=target_port, namespace=namespace, service=service, pod=pod)
    )
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    try:
        _wait_http(f"http://127.0.0.1:{port}/-/ready", proc, log)
    except BaseException:
        _stop(proc)
        raise
    return Prometheus(port, proc, workdir)
