"""The cluster's fixed names and networks, and where its files live.

One cluster per machine: the bridge, the chains and the cgroup root have fixed names, so a second
`up` finds the first (its state file) instead of fighting over them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"

NODE_NAME = "floodgate-node"
CLUSTER_DOMAIN = "cluster.local"
# Private ranges of our own, never routed off the machine (the host's network is 192.0.2.0/24).
POD_CIDR = "10.231.0.0/24"
NODE_IP = "10.231.0.1"  # the bridge's address: the node's InternalIP, where the apiserver listens
POD_PREFIX = 24
SERVICE_CIDR = "10.232.0.0/24"
KUBERNETES_SERVICE_IP = "10.232.0.1"
DNS_SERVICE_IP = "10.232.0.10"
APISERVER_PORT = 6443
BRIDGE = "fgc0"
CNI_NETWORK = "floodgate-cluster"
CGROUP_ROOT = "floodgate-cluster"  # under every cgroup v1 controller
CHAIN_FORWARD = "FLOODGATE-CLUSTER-FWD"
CHAIN_INPUT = "FLOODGATE-CLUSTER-IN"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
RUNC = Path("/usr/sbin/runc")  # Debian's runc (crun refuses the hybrid cgroup hierarchy here)

# Versions of the images the harness builds (bump to rebuild the cached ones).
PAUSE_TAG = "3.10-floodgate"
IMAGES_DEBIAN_SUITE = "bookworm"


def cache_dir() -> Path:
    """Per-user cache shared by clones: base image tarballs and podman's layer store."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "floodgate" / "cluster"


def default_state_dir() -> Path:
    return Path(os.environ.get("FLOODGATE_CLUSTER_DIR") or "/var/lib/floodgate-cluster")


@dataclass(frozen=True)
class Layout:
    """Every path the cluster writes, under one state directory."""

    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def docker_socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def etcd(self) -> Path:
        return self.root / "etcd"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def cni_conf(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam(self) -> Path:
        return self.root / "cni" / "ipam"
