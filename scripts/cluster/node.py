"""Configuration files of the cluster's components: what each one is told, in one place.

Every path points into the state directory (`Layout`); every listener is on loopback or on the
node's bridge address; nothing is configured to reach beyond the machine.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import yaml

from scripts.cluster import config as c
from scripts.cluster.config import Layout
from scripts.cluster.pki import KeyPair


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def kubeconfig(path: Path, server: str, ca: Path, user: str, pair: KeyPair) -> Path:
    """A kubeconfig with embedded credentials (JSON is valid YAML for every client)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "floodgate",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(pair.cert),
                    "client-key-data": _b64(pair.key),
                },
            }
        ],
        "contexts": [{"name": "floodgate", "context": {"cluster": "floodgate", "user": user}}],
        "current-context": "floodgate",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    path.chmod(0o600)
    return path


def client_env(kubeconfig_path: Path, home: Path) -> dict[str, str]:
    """Environment for kubectl and helm: this kubeconfig; their caches and homes under `home`."""
    env = dict(os.environ)
    env.update(
        KUBECONFIG=str(kubeconfig_path),
        KUBECACHEDIR=str(home / "kube-cache"),
        HELM_CACHE_HOME=str(home / "helm" / "cache"),
        HELM_CONFIG_HOME=str(home / "helm" / "config"),
        HELM_DATA_HOME=str(home / "helm" / "data"),
    )
    return env


def registry_hosts(registry: str) -> dict[str, str]:
    """containerd's hosts.toml per registry name: ours over plain HTTP, and docker.io mirrored by
    ours, so manifests that name public images (k8s/dev/, the chart's Redis default, what
    `skaffold run` deploys) pull the stand-ins pushed there under the same names. Only the
    mirror is listed as a host: nothing is fetched from the real Docker Hub.
    """
    plain = f'[host."http://{registry}"]\n  capabilities = ["pull", "resolve"]\n'
    return {
        registry: f'server = "http://{registry}"\n\n{plain}',
        "docker.io": f'server = "http://{registry}"\n\n{plain}',
    }


def containerd_config(layout: Layout, registry: str, sandbox_image: str) -> Path:
    """containerd 2.x (config version 3): CRI with runc from Debian, cgroupfs, our CNI, our
    registry.

    restrict_oom_score_adj: this machine lacks CAP_SYS_RESOURCE, so runc cannot lower a container's
    OOM score below containerd's (without it runc fails with "can't get final child's PID").
    """
    d = layout.containerd
    for name, text in registry_hosts(registry).items():
        certs = d / "certs.d" / name
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "hosts.toml").write_text(text)
    text = f"""\
version = 3
root = "{d / "root"}"
state = "{d / "state"}"
# Plugins that would write outside the state directory, and that the node does not need.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.nri.v1.nri",
                    "io.containerd.snapshotter.v1.blockfile",
                    "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[debug]
  address = ""

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{sandbox_image}"
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = "{d / "certs.d"}"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{c.CNI_BIN_DIR}"]
    conf_dir = "{layout.cni_conf}"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{c.RUNC}"
        Root = "{d / "runc"}"
        SystemdCgroup = false

[plugins.'io.containerd.grpc.v1.cri']
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""
    path = layout.etc / "containerd.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cni_config(layout: Layout) -> Path:
    """A bridge network on our bridge, no masquerading: pods are reachable from the host only."""
    layout.cni_conf.mkdir(parents=True, exist_ok=True)
    conf = {
        "cniVersion": "1.0.0",
        "name": c.CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": c.BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,  # a pod reaching its own Service may be sent back to itself
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.cni_ipam),
                    "ranges": [[{"subnet": c.POD_CIDR, "gateway": c.NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": False},
        ],
    }
    path = layout.cni_conf / "10-floodgate.conflist"
    path.write_text(json.dumps(conf, indent=2))
    return path


def kubelet_config(layout: Layout, ca: Path, serving: KeyPair) -> Path:
    resolv = layout.etc / "resolv.conf"
    # Pods with dnsPolicy Default get no nameserver: nothing resolves outside the cluster domain.
    resolv.write_text("# floodgate cluster: no upstream DNS\n")
    conf = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # cgroup v1 (hybrid, no systemd) here: the kubelet must be told it is allowed.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{c.CGROUP_ROOT}",
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "address": c.NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "tlsCertFile": str(serving.cert),
        "tlsPrivateKeyFile": str(serving.key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": c.CLUSTER_DOMAIN,
        "clusterDNS": [c.DNS_SERVICE_IP],
        "resolvConf": str(resolv),
        "failSwapOn": False,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        # A test machine's disk may be fuller than a production node's: evict only when nearly out.
        "evictionHard": {
            "memory.available": "200Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
            "nodefs.inodesFree": "2%",
        },
        "imageGCHighThresholdPercent": 98,
        "imageGCLowThresholdPercent": 95,
        "podPidsLimit": 4096,
        "maxPods": 60,
        "shutdownGracePeriod": "0s",
        "nodeStatusReportFrequency": "10s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "0s",
        "staticPodPath": "",
        "podLogsDir": str(layout.root / "pod-logs"),
    }
    path = layout.etc / "kubelet.yaml"
    path.write_text(json.dumps(conf, indent=2))
    return path


def kube_proxy_config(layout: Layout, kubeconfig_path: Path) -> Path:
    conf = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig_path)},
        "hostnameOverride": c.NODE_NAME,
        "clusterCIDR": c.POD_CIDR,
        "bindAddress": c.NODE_IP,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # NodePorts only on the bridge address; never on loopback (that needs route_localnet).
        "nodePortAddresses": [f"{c.NODE_IP}/32"],
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False, "syncPeriod": "10s"},
        # 0: leave the host's conntrack table size and timeouts as they are.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    }
    path = layout.etc / "kube-proxy.yaml"
    path.write_text(json.dumps(conf, indent=2))
    return path


COREFILE = f"""\
{c.CLUSTER_DOMAIN}:53 {{
    errors
    health :8080
    ready :8181
    kubernetes {c.CLUSTER_DOMAIN} {{
        pods insecure
    }}
    cache 30
    loadbalance
}}
"""


def coredns_manifest(image: str) -> str:
    """CoreDNS as cluster add-on: only the cluster domain; no `forward` (not even compiled in)."""
    labels = {"k8s-app": "kube-dns"}
    docs: list[dict[str, object]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "coredns", "namespace": "kube-system"},
            "data": {"Corefile": COREFILE},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",
                        "priorityClassName": "system-cluster-critical",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                ],
                                "readinessProbe": {
                                    "httpGet": {"path": "/ready", "port": 8181},
                                    "periodSeconds": 2,
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "periodSeconds": 10,
                                },
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "clusterIP": c.DNS_SERVICE_IP,
                "selector": labels,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"},
                ],
            },
        },
    ]
    return "\n---\n".join(json.dumps(d) for d in docs)


def metrics_server_manifest(image: str, module_dir: Path) -> str:
    """metrics-server's own manifests (manifests/base in its module), with the local image and the
    kubelet's serving certificate verified against the cluster CA (no --kubelet-insecure-tls)."""
    rendered = subprocess.run(
        [str(c.TOOLS_BIN / "kubectl"), "kustomize", str(module_dir / "manifests" / "base")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    for doc in docs:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        container = pod["containers"][0]
        container["image"] = image
        container["args"] = [
            a for a in container["args"] if not a.startswith("--kubelet-preferred-address-types")
        ] + [
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-certificate-authority=/ca/ca.crt",
        ]
        container["resources"]["requests"] = {"cpu": "20m", "memory": "64Mi"}
        container["volumeMounts"].append(
            {"name": "cluster-ca", "mountPath": "/ca", "readOnly": True}
        )
        pod["volumes"].append({"name": "cluster-ca", "configMap": {"name": "kube-root-ca.crt"}})
    return "\n---\n".join(json.dumps(d) for d in docs)
