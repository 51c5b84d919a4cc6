"""A real, local Kubernetes control plane for tests (the envtest pattern): etcd + kube-apiserver.

No fakes: `ControlPlane.start()` makes a throwaway PKI with `openssl`, starts etcd and
kube-apiserver from `.tools/bin` (built by `scripts/tools.sh`) on free loopback ports, waits for
`/readyz`, and writes a kubeconfig with embedded credentials (user `admin`, group
`system:masters`). There is no controller-manager, scheduler or kubelet: objects are stored and
admitted, but nothing reconciles them (pods never run, namespaces never finish deleting).

`stop()` ends exactly the processes this object started (by pid) and deletes its temp directory.
"""

from __future__ import annotations

import atexit
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.cluster.node import client_env, kubeconfig
from scripts.cluster.pki import Authority, KeyPair, PkiError

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kubectl", "helm")

SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
FIRST_SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service's ClusterIP: must be in the serving cert
LOOPBACK = "127.0.0.1"

_LOG_TAIL_CHARS = 6000


class ControlPlaneError(RuntimeError):
    """The control plane could not be started (the message carries the process logs)."""


def free_port() -> int:
    """A port that was free on the loopback interface a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def missing_binaries(bin_dir: Path = TOOLS_BIN) -> list[str]:
    return [name for name in REQUIRED_BINARIES if not os.access(bin_dir / name, os.X_OK)]


def _tail(path: Path, limit: int = _LOG_TAIL_CHARS) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no log>"
    return text if len(text) <= limit else "…" + text[-limit:]


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


# --------------------------------------------------------------------------------------- PKI


@dataclass(frozen=True)
class Pki:
    """Files of the throwaway PKI (all PEM)."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path  # RSA private key: signs service-account tokens
    sa_pub: Path  # its public key: verifies them


def make_pki(directory: Path, server_sans: Sequence[str] | None = None) -> Pki:
    """CA, apiserver serving cert, admin client cert (O=system:masters), service-account keypair."""
    sans = server_sans or [
        f"IP:{LOOPBACK}",
        "DNS:localhost",
        f"IP:{FIRST_SERVICE_IP}",
        "DNS:kubernetes",
        "DNS:kubernetes.default",
        "DNS:kubernetes.default.svc",
        "DNS:kubernetes.default.svc.cluster.local",
    ]
    try:
        ca = Authority(directory)
        serving = ca.issue("apiserver", "/CN=kube-apiserver", sans)
        admin = ca.issue("admin", "/O=system:masters/CN=admin")
        sa = ca.service_account_keys()
    except PkiError as exc:
        raise ControlPlaneError(str(exc)) from exc
    return Pki(
        ca_cert=ca.ca.cert,
        ca_key=ca.ca.key,
        serving_cert=serving.cert,
        serving_key=serving.key,
        admin_cert=admin.cert,
        admin_key=admin.key,
        sa_key=sa.key,
        sa_pub=sa.cert,
    )


# ------------------------------------------------------------------------------- processes


@dataclass
class _Process:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM then SIGKILL, addressed to this pid only."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)


def _spawn(name: str, argv: Sequence[str], log_path: Path, cwd: Path) -> _Process:
    with log_path.open("ab") as log:
        proc = subprocess.Popen(  # fixed argv, no shell
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return _Process(name=name, proc=proc, log_path=log_path)


@dataclass
class ControlPlane:
    """etcd + kube-apiserver on loopback, plus kubectl/helm wired to it.

    Use as `cp = ControlPlane().start()` … `cp.stop()`, or as a context manager.
    """

    bin_dir: Path = TOOLS_BIN
    start_timeout: float = 90.0
    extra_apiserver_args: Sequence[str] = ()

    workdir: Path = field(init=False)
    pki: Pki = field(init=False)
    etcd_url: str = field(init=False, default="")
    server: str = field(init=False, default="")  # https://127.0.0.1:<port>
    kubeconfig: Path = field(init=False)
    startup_seconds: float = field(init=False, default=0.0)
    timings: dict[str, float] = field(init=False, default_factory=dict)  # seconds per phase
    _processes: list[_Process] = field(init=False, default_factory=list)
    _stopped: bool = field(init=False, default=False)

    # -------------------------------------------------------------- lifecycle

    def start(self) -> ControlPlane:
        missing = missing_binaries(self.bin_dir)
        if missing:
            raise ControlPlaneError(
                f"missing {', '.join(missing)} in {self.bin_dir}: run `make tools`"
            )
        began = time.monotonic()
        self.workdir = Path(tempfile.mkdtemp(prefix="floodgate-k8s-"))
        atexit.register(self.stop)
        try:
            mark = began
            self.pki = make_pki(self.workdir / "pki")
            self.timings["pki"], mark = time.monotonic() - mark, time.monotonic()
            self._start_etcd(deadline=began + self.start_timeout)
            self.timings["etcd"], mark = time.monotonic() - mark, time.monotonic()
            self._start_apiserver(deadline=began + self.start_timeout)
            self.timings["kube-apiserver"] = time.monotonic() - mark
            self.kubeconfig = self._write_kubeconfig()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the processes this object started (apiserver first), then delete the temp dir."""
        if self._stopped:
            return
        self._stopped = True
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        workdir = getattr(self, "workdir", None)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        atexit.unregister(self.stop)

    @property
    def pids(self) -> dict[str, int]:
        return {p.name: p.proc.pid for p in self._processes}

    # -------------------------------------------------------------- etcd

    def _start_etcd(self, deadline: float, attempts: int = 3) -> None:
        data_dir = self.workdir / "etcd-data"
        for attempt in range(1, attempts + 1):
            shutil.rmtree(data_dir, ignore_errors=True)
            client, peer = free_port(), free_port()
            client_url, peer_url = f"http://{LOOPBACK}:{client}", f"http://{LOOPBACK}:{peer}"
            log_path = self.workdir / f"etcd.{attempt}.log"
            process = _spawn(
                "etcd",
                [
                    str(self.bin_dir / "etcd"),
                    "--name=floodgate-test",
                    f"--data-dir={data_dir}",
                    f"--listen-client-urls={client_url}",
                    f"--advertise-client-urls={client_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=floodgate-test={peer_url}",
                    "--initial-cluster-state=new",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
                log_path,
                cwd=self.workdir,
            )
            self._processes.append(process)
            if self._wait_etcd(process, client_url, deadline):
                self.etcd_url = client_url
                return
            if attempt < attempts and "address already in use" in _tail(log_path):
                continue  # lost a free-port race: try other ports
            raise ControlPlaneError(self._failure("etcd did not become healthy", process))

    def _wait_etcd(self, process: _Process, url: str, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if not process.alive():
                return False
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if json.loads(resp.read()).get("health") == "true":
                        return True
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        return False

    # -------------------------------------------------------------- kube-apiserver

    def _start_apiserver(self, deadline: float, attempts: int = 3) -> None:
        pki = self.pki
        cert_dir = self.workdir / "apiserver-certs"
        cert_dir.mkdir(exist_ok=True)
        for attempt in range(1, attempts + 1):
            port = free_port()
            log_path = self.workdir / f"kube-apiserver.{attempt}.log"
            argv = [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                f"--bind-address={LOOPBACK}",
                f"--advertise-address={LOOPBACK}",
                f"--secure-port={port}",
                f"--cert-dir={cert_dir}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer=https://{LOOPBACK}:{port}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                # No kubelets, no other apiservers: nothing to put in the `kubernetes` Endpoints.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                *self.extra_apiserver_args,
            ]
            process = _spawn("kube-apiserver", argv, log_path, cwd=self.workdir)
            self._processes.append(process)
            server = f"https://{LOOPBACK}:{port}"
            if self._wait_readyz(process, server, deadline):
                self.server = server
                return
            if attempt < attempts and "address already in use" in _tail(log_path):
                continue
            raise ControlPlaneError(self._failure("kube-apiserver did not become ready", process))

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the test CA and presents the admin client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        ctx.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        return ctx

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        """GET `path` from the apiserver as admin; returns (status, body)."""
        req = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ssl_context()) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def _wait_readyz(self, process: _Process, server: str, deadline: float) -> bool:
        ctx = self.ssl_context()
        while time.monotonic() < deadline:
            if not process.alive():
                return False
            try:
                with urllib.request.urlopen(f"{server}/readyz", timeout=2, context=ctx) as resp:
                    if resp.status == 200:
                        return True
            except (OSError, ValueError):
                pass  # not listening yet, or 500 while post-start hooks run
            time.sleep(0.1)
        return False

    def _failure(self, what: str, process: _Process) -> str:
        code = process.proc.poll()
        state = "still running" if code is None else f"exited with {code}"
        logs = [f"{what} ({process.name} pid {process.proc.pid} {state})"]
        for p in self._processes:
            logs.append(f"--- {p.log_path} ---\n{_tail(p.log_path)}")
        return "\n".join(logs)

    # -------------------------------------------------------------- clients

    def _write_kubeconfig(self) -> Path:
        admin = KeyPair(self.pki.admin_cert, self.pki.admin_key)
        return kubeconfig(
            self.workdir / "kubeconfig", self.server, self.pki.ca_cert, "admin", admin
        )

    def client_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for kubectl/helm: this kubeconfig, caches and helm homes in the temp dir."""
        return {**client_env(self.kubeconfig, self.workdir / "home"), **(extra or {})}

    def _run(
        self, binary: str, args: Sequence[str], input: str | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / binary), *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.client_env(),
            cwd=self.workdir,
            timeout=timeout,
            check=False,
        )

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this control plane (never raises on a non-zero exit)."""
        return self._run("kubectl", [f"--kubeconfig={self.kubeconfig}", *args], input, timeout)

    def helm(
        self, *args: str, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run helm against this control plane (never raises on a non-zero exit)."""
        return self._run("helm", [f"--kubeconfig={self.kubeconfig}", *args], input, timeout)
