"""Bring the single-node cluster up and take it down again.

`up` records every change in the state file *before* making it, so `down` can undo a half-finished
`up` as well as a running cluster. Order up: host network → PKI → etcd → apiserver → registry →
controller-manager, scheduler → containerd → kubelet, kube-proxy → node Ready → CoreDNS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.cluster import config as c
from scripts.cluster import host, images, node, proc
from scripts.cluster.config import Layout
from scripts.cluster.pki import Authority, KeyPair

DAEMON_ORDER = (
    "etcd",
    "kube-apiserver",
    "registry",
    "docker-api",
    "kube-controller-manager",
    "kube-scheduler",
    "containerd",
    "kubelet",
    "kube-proxy",
)
REQUIRED_TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "helm",
    "containerd",
    "containerd-shim-runc-v2",
    "coredns",
    "metrics-server",
    "kube-state-metrics",
)
REQUIRED_HOST = (
    "runc",
    "iptables",
    "conntrack",
    "ip",
    "podman",
    "mmdebstrap",
    "docker-registry",
    "openssl",
)
SHIM_RUN_DIR = Path("/run/containerd")


class ClusterError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def missing_prerequisites() -> list[str]:
    missing = [f".tools/bin/{t}" for t in REQUIRED_TOOLS if not os.access(c.TOOLS_BIN / t, os.X_OK)]
    missing += [t for t in REQUIRED_HOST if shutil.which(t) is None]
    missing += [
        str(c.CNI_BIN_DIR / p)
        for p in ("bridge", "host-local", "portmap", "loopback")
        if not (c.CNI_BIN_DIR / p).exists()
    ]
    return missing


@dataclass
class State:
    """What `down` needs to undo; written after every step."""

    layout: Layout
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, layout: Layout) -> State | None:
        try:
            return cls(layout, json.loads(layout.state_file.read_text()))
        except (OSError, ValueError):
            return None

    def save(self) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        tmp = self.layout.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.layout.state_file)

    def daemons(self) -> list[proc.Daemon]:
        return [proc.Daemon.from_json(d) for d in self.data.get("daemons", [])]

    def add_daemon(self, daemon: proc.Daemon) -> None:
        self.data.setdefault("daemons", []).append(daemon.to_json())
        self.save()

    def daemon(self, name: str) -> proc.Daemon | None:
        return next((d for d in self.daemons() if d.name == name), None)


@dataclass
class Cluster:
    """A handle on the cluster in `layout` (running or not)."""

    layout: Layout = field(default_factory=lambda: Layout(c.default_state_dir()))
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"https://{c.NODE_IP}:{c.APISERVER_PORT}"

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    def state(self) -> State | None:
        return State.load(self.layout)

    def running(self) -> bool:
        st = self.state()
        if st is None or st.data.get("phase") != "ready":
            return False
        return all(d.alive() for d in st.daemons())

    @property
    def registry(self) -> str:
        st = self.state()
        if st is None:
            raise ClusterError("no cluster")
        return str(st.data["registry"])

    @property
    def docker_host(self) -> str:
        st = self.state()
        if st is None:
            raise ClusterError("no cluster")
        return str(st.data["docker_host"])

    def exports(self) -> dict[str, str]:
        """What a shell needs to use this cluster (`up` prints it as one `export` line): kubectl
        and helm find it, Docker clients build through podman's API, and skaffold (which reads
        each flag from SKAFFOLD_<FLAG>) pushes to the cluster's plain-HTTP registry."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "DOCKER_HOST": self.docker_host,
            "SKAFFOLD_DEFAULT_REPO": self.registry,
            "SKAFFOLD_INSECURE_REGISTRY": self.registry,
        }

    # ------------------------------------------------------------------ clients

    def env(self) -> dict[str, str]:
        return node.client_env(self.kubeconfig, self.layout.root / "client-home")

    def kubectl(
        self, *args: str, input: str | None = None, timeout: float = 120, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(c.TOOLS_BIN / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input, capture_output=True, text=True, env=self.env(),
            timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def helm(
        self, *args: str, timeout: float = 600, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(c.TOOLS_BIN / "helm"), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, env=self.env(), timeout=timeout, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise ClusterError(f"helm {' '.join(args)}: {result.stderr.strip()}")
        return result

    # ------------------------------------------------------------------ up

    def up(self, timeout: float = 300) -> Cluster:
        if os.geteuid() != 0:
            raise ClusterError("the cluster needs root (network namespaces, cgroups, iptables)")
        missing = missing_prerequisites()
        if missing:
            raise ClusterError(
                f"missing {', '.join(missing)}: run `make cluster` (it installs and builds them)"
            )
        if self.running():
            log(f"already running (state in {self.layout.root})")
            return self
        if self.state() is not None or self.layout.root.exists():
            log("cleaning up what a previous cluster left")
            self.down()
        began = time.monotonic()
        st = State(self.layout, {"phase": "starting", "daemons": []})
        # Record before changing: `down` restores exactly these.
        st.data["sysctls"] = host.read_sysctls([*host.HARNESS_SYSCTLS, *host.KUBELET_SYSCTLS])
        st.data["chains"] = {
            b: {t: sorted(n) for t, n in ts.items()} for b, ts in host.chains().items()
        }
        st.data["shim_run_dir_existed"] = SHIM_RUN_DIR.exists()
        st.save()
        try:
            self._up(st, began + timeout)
        except BaseException:
            log(f"up failed; logs in {self.layout.logs}")
            raise
        st.data["phase"] = "ready"
        st.save()
        self.timings["total"] = round(time.monotonic() - began, 1)
        log(f"ready in {self.timings['total']} s")
        return self

    def _step(self, name: str, fn: Callable[[], None]) -> None:
        t = time.monotonic()
        fn()
        self.timings[name] = round(time.monotonic() - t, 1)

    def _up(self, st: State, deadline: float) -> None:
        lay = self.layout
        for d in (lay.logs, lay.etc, lay.pki):
            d.mkdir(parents=True, exist_ok=True)

        def network() -> None:
            host.write_sysctls(host.HARNESS_SYSCTLS)
            st.data["bridge"] = True
            st.save()
            host.create_bridge()
            st.data["firewall"] = True
            st.save()
            host.install_firewall()
            st.data["cgroups"] = True
            st.save()
            host.create_cgroups()

        self._step("network", network)
        ca: Authority | None = None
        creds: dict[str, KeyPair] = {}

        def pki() -> None:
            nonlocal ca
            ca = Authority(lay.pki, days=365, name="floodgate-cluster-ca")
            sans = [
                "IP:127.0.0.1", f"IP:{c.NODE_IP}", f"IP:{c.KUBERNETES_SERVICE_IP}", "DNS:localhost",
                "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                f"DNS:kubernetes.default.svc.{c.CLUSTER_DOMAIN}",
            ]  # fmt: skip
            creds["apiserver"] = ca.issue("apiserver", "/CN=kube-apiserver", sans)
            creds["kubelet-serving"] = ca.issue(
                "kubelet-serving", f"/CN={c.NODE_NAME}", [f"IP:{c.NODE_IP}", f"DNS:{c.NODE_NAME}"]
            )
            for name, subject in (
                ("admin", "/O=system:masters/CN=admin"),
                ("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client"),
                ("front-proxy-client", "/CN=front-proxy-client"),
                ("node", f"/O=system:nodes/CN=system:node:{c.NODE_NAME}"),
                ("kube-proxy", "/CN=system:kube-proxy"),
                ("kube-scheduler", "/CN=system:kube-scheduler"),
                ("kube-controller-manager", "/CN=system:kube-controller-manager"),
            ):
                creds[name] = ca.issue(name, subject)
            creds["sa"] = ca.service_account_keys()
            for name in (
                "admin",
                "node",
                "kube-proxy",
                "kube-scheduler",
                "kube-controller-manager",
            ):
                target = lay.kubeconfig if name == "admin" else lay.etc / f"{name}.kubeconfig"
                node.kubeconfig(target, self.server, ca.ca.cert, name, creds[name])

        self._step("pki", pki)
        assert ca is not None
        cafile = ca.ca.cert
        tools = c.TOOLS_BIN

        def etcd() -> None:
            client, peer = free_port(), free_port()
            url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
            st.data["etcd"] = url
            self._spawn(st, "etcd", [
                str(tools / "etcd"), "--name=floodgate", f"--data-dir={lay.etcd}",
                f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
                f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=floodgate={peer_url}", "--unsafe-no-fsync", "--log-level=warn",
            ])  # fmt: skip
            self._wait("etcd", deadline, lambda: _http_ok(f"{url}/health"))

        self._step("etcd", etcd)

        def apiserver() -> None:
            self._spawn(st, "kube-apiserver", [
                str(tools / "kube-apiserver"),
                f"--etcd-servers={st.data['etcd']}",
                f"--bind-address={c.NODE_IP}", f"--advertise-address={c.NODE_IP}",
                f"--secure-port={c.APISERVER_PORT}", f"--cert-dir={lay.root / 'apiserver-certs'}",
                f"--tls-cert-file={creds['apiserver'].cert}",
                f"--tls-private-key-file={creds['apiserver'].key}",
                f"--client-ca-file={cafile}",
                "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
                f"--service-account-issuer=https://kubernetes.default.svc.{c.CLUSTER_DOMAIN}",
                f"--service-account-key-file={creds['sa'].cert}",
                f"--service-account-signing-key-file={creds['sa'].key}",
                f"--service-cluster-ip-range={c.SERVICE_CIDR}",
                f"--kubelet-client-certificate={creds['apiserver-kubelet-client'].cert}",
                f"--kubelet-client-key={creds['apiserver-kubelet-client'].key}",
                "--kubelet-preferred-address-types=InternalIP",
                # The aggregation layer (metrics-server registers an APIService through it).
                f"--requestheader-client-ca-file={cafile}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={creds['front-proxy-client'].cert}",
                f"--proxy-client-key-file={creds['front-proxy-client'].key}",
                "--allow-privileged=true", "--profiling=false",
            ])  # fmt: skip
            ctx = ssl.create_default_context(cafile=str(cafile))
            ctx.load_cert_chain(str(creds["admin"].cert), str(creds["admin"].key))
            self._wait("kube-apiserver", deadline, lambda: _http_ok(f"{self.server}/readyz", ctx))

        self._step("kube-apiserver", apiserver)

        def registry() -> None:
            port = free_port()
            st.data["registry"] = f"127.0.0.1:{port}"
            conf = lay.etc / "registry.yml"
            conf.write_text(json.dumps({
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {
                    "filesystem": {"rootdirectory": str(lay.registry)},
                    "delete": {"enabled": True},
                },
                "http": {"addr": f"127.0.0.1:{port}"},
            }))  # fmt: skip
            self._spawn(st, "registry", ["docker-registry", "serve", str(conf)])
            self._wait("registry", deadline, lambda: _http_ok(f"http://127.0.0.1:{port}/v2/"))

        self._step("registry", registry)

        def docker_api() -> None:
            # podman's Docker-compatible API on the harness's own image store: `skaffold` (and any
            # Docker client) builds and pushes through DOCKER_HOST with no Docker engine.
            conf = lay.etc / "registries.conf"
            conf.write_text(images.registries_conf(st.data["registry"]))
            st.data["docker_host"] = f"unix://{lay.docker_socket}"
            podman = images.Podman(lay.logs / "images.log")
            argv = podman.argv("system", "service", "--time=0", st.data["docker_host"])
            env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)}
            self._spawn(st, "docker-api", argv, env=env)
            self._wait("docker-api", deadline, lambda: _docker_ping(lay.docker_socket))

        self._step("docker-api", docker_api)

        def node_images() -> None:
            built, timings = images.build_node_images(lay.logs / "images.log")
            self.timings.update({f"image:{k}": v for k, v in timings.items()})
            st.data["node_images"] = images.push_refs(
                lay.logs / "images.log", built, st.data["registry"]
            )
            st.save()

        self._step("node-images", node_images)

        def controllers() -> None:
            kcm_conf = str(lay.etc / "kube-controller-manager.kubeconfig")
            self._spawn(st, "kube-controller-manager", [
                str(tools / "kube-controller-manager"), f"--kubeconfig={kcm_conf}",
                f"--authentication-kubeconfig={kcm_conf}", f"--authorization-kubeconfig={kcm_conf}",
                "--bind-address=127.0.0.1", "--secure-port=10257", "--leader-elect=false",
                f"--service-account-private-key-file={creds['sa'].key}", f"--root-ca-file={cafile}",
                f"--cluster-signing-cert-file={cafile}", f"--cluster-signing-key-file={ca.ca.key}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={c.SERVICE_CIDR}",
                # Quicker HPA reactions than production's 15 s; the chart's own windows stay as
                # they are.
                "--horizontal-pod-autoscaler-sync-period=5s",
            ])  # fmt: skip
            sched_conf = str(lay.etc / "kube-scheduler.kubeconfig")
            self._spawn(st, "kube-scheduler", [
                str(tools / "kube-scheduler"), f"--kubeconfig={sched_conf}",
                f"--authentication-kubeconfig={sched_conf}",
                f"--authorization-kubeconfig={sched_conf}",
                "--bind-address=127.0.0.1", "--secure-port=10259", "--leader-elect=false",
            ])  # fmt: skip

        self._step("controllers", controllers)

        def containerd() -> None:
            conf = node.containerd_config(lay, st.data["registry"], st.data["node_images"]["pause"])
            node.cni_config(lay)
            self._spawn(
                st,
                "containerd",
                [str(tools / "containerd"), f"--config={conf}", "--log-level=warn"],
                env=_node_env(),
            )
            self._wait("containerd", deadline, lambda: lay.containerd_socket.is_socket())

        self._step("containerd", containerd)

        def kubelet() -> None:
            conf = node.kubelet_config(lay, cafile, creds["kubelet-serving"])
            self._spawn(st, "kubelet", [
                str(tools / "kubelet"), f"--config={conf}",
                f"--kubeconfig={lay.etc / 'node.kubeconfig'}", f"--hostname-override={c.NODE_NAME}",
                f"--node-ip={c.NODE_IP}",
                f"--root-dir={lay.kubelet}", f"--cert-dir={lay.kubelet / 'pki'}",
                # cAdvisor's own containerd client (deprecated flag, still honoured): without it
                # /metrics/cadvisor has only bare cgroups, no namespace/pod/container labels.
                f"--containerd={lay.containerd_socket}",
            ], env=_node_env())  # fmt: skip
            proxy_conf = node.kube_proxy_config(lay, lay.etc / "kube-proxy.kubeconfig")
            self._spawn(
                st,
                "kube-proxy",
                [str(tools / "kube-proxy"), f"--config={proxy_conf}"],
                env=_node_env(),
            )
            self._wait("node Ready", deadline, self._node_ready)
            self._wait(
                "kube-proxy's rules",
                deadline,
                lambda: "KUBE-SERVICES" in host.run("iptables-save", "-t", "nat").stdout,
            )
            host.put_firewall_first()

        self._step("node", kubelet)

        def dns() -> None:
            self.kubectl(
                "apply",
                "-f",
                "-",
                input=node.coredns_manifest(st.data["node_images"]["coredns"]),
                check=True,
            )
            self.kubectl(
                "-n", "kube-system", "rollout", "status", "deployment/coredns",
                f"--timeout={max(10, int(deadline - time.monotonic()))}s", check=True,
            )  # fmt: skip

        self._step("dns", dns)

        def metrics() -> None:
            # Not waited for: the HPA tests wait for the metrics API themselves.
            version = images.pinned_version("tools-cluster.sh", "METRICS_SERVER_VERSION")
            manifest = node.metrics_server_manifest(
                st.data["node_images"]["metrics-server"],
                images.module_dir("sigs.k8s.io/metrics-server", version),
            )
            self.kubectl("apply", "-f", "-", input=manifest, check=True)

        self._step("metrics-server", metrics)

    def _spawn(
        self, st: State, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> None:
        daemon = proc.spawn(name, argv, self.layout.logs, env=env, cwd=self.layout.root)
        st.add_daemon(daemon)

    def _wait(self, what: str, deadline: float, ready: Callable[[], bool]) -> None:
        st = self.state()
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [d for d in (st.daemons() if st else []) if not d.alive()]
            if dead:
                raise ClusterError(
                    f"{dead[0].name} exited while waiting for {what}:\n{proc.tail(dead[0].log)}"
                )
            time.sleep(0.2)
        raise ClusterError(f"timed out waiting for {what}")

    def _node_ready(self) -> bool:
        out = self.kubectl(
            "get",
            "node",
            c.NODE_NAME,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
        )
        return out.stdout.strip() == "True"

    # ------------------------------------------------------------------ down

    def down(self) -> list[str]:
        """Undo everything the state file records; returns what could not be removed."""
        st = self.state()
        problems: list[str] = []
        lay = self.layout
        daemons = {d.name: d for d in st.daemons()} if st else {}
        # The node first, so nothing restarts the containers killed next.
        for name in ("kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"):
            if name in daemons:
                proc.stop(daemons[name])
        if st and (lay.etc / "kube-proxy.yaml").exists():
            subprocess.run(
                [
                    str(c.TOOLS_BIN / "kube-proxy"), "--cleanup",
                    f"--config={lay.etc / 'kube-proxy.yaml'}",
                ],
                capture_output=True, timeout=60, check=False,
            )  # fmt: skip
        # Containers (every process in our cgroup subtree) and their shims (named by our socket).
        for _ in range(3):
            pids = host.cgroup_pids() | _shim_pids(lay.containerd_socket)
            if not pids:
                break
            host.kill_pids(pids)
            time.sleep(0.5)
        for name in reversed(DAEMON_ORDER):
            if name in daemons and name not in ("kubelet", "kube-proxy"):
                proc.stop(daemons[name])
        left = host.unmount_under(lay.root)
        problems += [f"mount {m}" for m in left]
        if st is not None:
            if st.data.get("firewall") or st.data.get("bridge"):
                host.remove_owned_chains(st.data.get("chains", {}))
            if st.data.get("bridge"):
                with contextlib.suppress(host.HostError):
                    host.delete_bridge()
            if st.data.get("cgroups"):
                problems += [f"cgroup {g}" for g in host.remove_cgroups()]
            if "sysctls" in st.data:
                host.write_sysctls(st.data["sysctls"])
            if not st.data.get("shim_run_dir_existed", True):
                shutil.rmtree(SHIM_RUN_DIR, ignore_errors=True)
        if host.bridge_exists():
            problems.append(f"bridge {c.BRIDGE}")
        if not problems:
            shutil.rmtree(lay.root, ignore_errors=True)
        return problems


def _node_env() -> dict[str, str]:
    """PATH for containerd and the kubelet: the shim we built, then Debian's runc/iptables."""
    env = dict(os.environ)
    env["PATH"] = f"{c.TOOLS_BIN}:/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
    return env


def _shim_pids(socket_path: Path) -> set[int]:
    found = set()
    needle = str(socket_path).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv and argv[0].endswith(b"containerd-shim-runc-v2") and needle in argv:
                    found.add(int(entry.name))
    return found


def _docker_ping(sock: Path) -> bool:
    """GET /_ping on a Docker API unix socket."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = s.recv(64).split(b"\r\n", 1)[0]
            return status_line.split(b" ")[1:2] == [b"200"]
    except OSError:
        return False


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        # The callers build these URLs themselves, always http(s).
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:  # noqa: S310
            return 200 <= int(resp.status) < 300
    except (OSError, ValueError, urllib.error.URLError):
        return False
