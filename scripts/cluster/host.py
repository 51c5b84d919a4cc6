"""What the cluster changes on the host, each with its undo: bridge, firewall chains, kernel
settings, cgroups, mounts. Prior values are returned so the caller records them for `down`."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from scripts.cluster import config as c

# Set by the harness: forwarding between the bridge and the host's stack, and br_netfilter so
# bridged pod-to-pod packets pass kube-proxy's DNAT rules.
HARNESS_SYSCTLS = {"net/ipv4/ip_forward": "1", "net/bridge/bridge-nf-call-iptables": "1"}
# The kubelet sets these when it starts (container_manager_linux.go, setupKernelTunables); there
# is no setting to make it only warn, so they are recorded before it starts and restored after.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
# Chains made by the processes the cluster starts (kube-proxy, kubelet, CNI plugins) or by itself.
_OWNED_CHAIN = re.compile(r"^(KUBE-|CNI-|FLOODGATE-CLUSTER)")
CGROUP_FS = Path("/sys/fs/cgroup")


class HostError(RuntimeError):
    pass


def run(
    *argv: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, check=False, input=input, timeout=60
    )
    if check and proc.returncode != 0:
        raise HostError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


# ---------------------------------------------------------------------------------- sysctls


def read_sysctls(names: Iterable[str]) -> dict[str, str]:
    return {name: Path("/proc/sys", name).read_text().strip() for name in names}


def write_sysctls(values: Mapping[str, str]) -> None:
    for name, value in values.items():
        Path("/proc/sys", name).write_text(value + "\n")


# ---------------------------------------------------------------------------------- network


def bridge_exists() -> bool:
    return Path("/sys/class/net", c.BRIDGE).exists()


def create_bridge() -> None:
    """The node's bridge, made before any pod so the apiserver can listen on its address."""
    run("ip", "link", "add", c.BRIDGE, "type", "bridge")
    run("ip", "addr", "add", f"{c.NODE_IP}/{c.POD_PREFIX}", "dev", c.BRIDGE)
    run("ip", "link", "set", c.BRIDGE, "up")


def delete_bridge() -> None:
    if bridge_exists():
        run("ip", "link", "del", c.BRIDGE)


def install_firewall() -> None:
    """Pods talk to pods, Services and the node's bridge address, and to nothing else.

    FORWARD: traffic from the pod network must be for the pod network (Service traffic has been
    DNATed to a pod by then) or it is dropped, and nothing from elsewhere is forwarded into it.
    INPUT: pods reach the host only on the node address (the apiserver, the kubelet).
    """
    rules = {
        c.CHAIN_FORWARD: [
            ["-s", c.POD_CIDR, "-d", c.POD_CIDR, "-j", "RETURN"],
            ["-s", c.POD_CIDR, "-j", "DROP"],
            ["-d", c.POD_CIDR, "-j", "DROP"],
        ],
        c.CHAIN_INPUT: [
            # Replies to the host's own connections (to a Service, de-NATed after this chain runs).
            ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
            ["-s", c.POD_CIDR, "-d", c.NODE_IP, "-j", "RETURN"],
            ["-s", c.POD_CIDR, "-j", "DROP"],
        ],
    }
    for chain, chain_rules in rules.items():
        run("iptables", "-w", "-N", chain)
        for rule in chain_rules:
            run("iptables", "-w", "-A", chain, *rule)
    put_firewall_first()


def put_firewall_first() -> None:
    """Our jumps at the top of FORWARD and INPUT (kube-proxy inserts its own above them)."""
    for parent, chain in (("FORWARD", c.CHAIN_FORWARD), ("INPUT", c.CHAIN_INPUT)):
        while run("iptables", "-w", "-D", parent, "-j", chain, check=False).returncode == 0:
            pass
        run("iptables", "-w", "-I", parent, "1", "-j", chain)


def chains() -> dict[str, dict[str, set[str]]]:
    """{binary: {table: chain names}} for iptables and ip6tables, as they are now."""
    found: dict[str, dict[str, set[str]]] = {}
    for binary in ("iptables", "ip6tables"):
        found[binary] = {}
        proc = run(f"{binary}-save", check=False)
        table = ""
        for line in proc.stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
                found[binary][table] = set()
            elif line.startswith(":") and table:
                found[binary][table].add(line[1:].split()[0])
    return found


def remove_owned_chains(before: Mapping[str, Mapping[str, Iterable[str]]]) -> list[str]:
    """Delete the chains (and the rules jumping to them) that match our prefixes and were not
    there before `up`; everything else in the tables is written back as it is."""
    removed: list[str] = []
    for binary in ("iptables", "ip6tables"):
        saved = run(f"{binary}-save", check=False)
        if saved.returncode != 0:
            continue
        kept_lines: list[str] = []
        table = ""
        doomed: set[str] = set()
        for line in saved.stdout.splitlines():
            if line.startswith("*"):
                table = line[1:]
                prior = set(before.get(binary, {}).get(table, ()))
                doomed = set()
                for other in (
                    saved.stdout.split(f"*{table}\n", 1)[1].split("COMMIT", 1)[0].splitlines()
                ):
                    if other.startswith(":"):
                        name = other[1:].split()[0]
                        if _OWNED_CHAIN.match(name) and name not in prior:
                            doomed.add(name)
                removed += [f"{binary}/{table}/{name}" for name in sorted(doomed)]
            elif (line.startswith(":") and line[1:].split()[0] in doomed) or (
                line.startswith("-A ") and _touches(line, doomed)
            ):
                continue
            kept_lines.append(line)
        if removed:
            run(f"{binary}-restore", "-w", input="\n".join(kept_lines) + "\n")
    return removed


def _touches(rule: str, doomed: set[str]) -> bool:
    words = rule.split()
    if words[1] in doomed:
        return True
    for flag in ("-j", "-g", "--jump", "--goto"):
        if flag in words:
            i = words.index(flag)
            if i + 1 < len(words) and words[i + 1] in doomed:
                return True
    return False


# ---------------------------------------------------------------------------------- cgroups


def cgroup_roots() -> list[Path]:
    """Our cgroup root in every mounted v1 hierarchy (the node's cgroupRoot)."""
    roots = []
    for hierarchy in sorted(CGROUP_FS.iterdir()):
        if (
            hierarchy.is_dir()
            and not hierarchy.is_symlink()
            and (hierarchy / "cgroup.procs").exists()
        ):
            roots.append(hierarchy / c.CGROUP_ROOT)
    return roots


def create_cgroups() -> None:
    for root in cgroup_roots():
        root.mkdir(exist_ok=True)
        if root.parent.name == "cpuset":  # a v1 cpuset group accepts no task until these are set
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not (root / name).read_text().strip():
                    (root / name).write_text((root.parent / name).read_text())


def cgroup_pids() -> set[int]:
    pids: set[int] = set()
    for root in cgroup_roots():
        if root.exists():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
    return pids


def remove_cgroups() -> list[str]:
    """rmdir our subtree, deepest first; returns what could not be removed (still has tasks)."""
    left: list[str] = []
    for root in cgroup_roots():
        if not root.exists():
            continue
        dirs = sorted(
            (p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        )
        for d in [*dirs, root]:
            try:
                d.rmdir()
            except OSError:
                left.append(str(d))
    return left


# ---------------------------------------------------------------------------------- mounts


def mounts_under(root: Path) -> list[str]:
    found = []
    prefix = str(root.resolve()) + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point.startswith(prefix) or point == prefix[:-1]:
            found.append(point)
    return sorted(set(found), key=len, reverse=True)


def unmount_under(root: Path) -> list[str]:
    left = []
    for point in mounts_under(root):
        if (
            run("umount", point, check=False).returncode != 0
            and run("umount", "-l", point, check=False).returncode != 0
        ):
            left.append(point)
    return left


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 9)
