"""The cluster's images, built here with podman from Debian packages (nothing is pulled from a
public registry), cached per user, and pushed to the cluster's loopback registry.

  pause        the sandbox image: Kubernetes' own pause.c
               (from the k8s.io/kubernetes module), static
  coredns, metrics-server   the binaries scripts/tools-cluster.sh built, on an empty base
  python base  mmdebstrap --variant=apt with python3/venv/pip, EXTERNALLY-MANAGED removed: stands in
               for python:3.11-slim-bookworm as service/Dockerfile's PYTHON_IMAGE
  redis        Debian's redis-server (the chart's sidecar and shared Redis; k8s/dev/redis.yaml)
  postgres     Debian's PostgreSQL 15 with an entrypoint that honours POSTGRES_USER/_PASSWORD/_DB
               and PGDATA like the official image (k8s/dev/postgres.yaml)
  floodgate    service/Dockerfile, unchanged, on the python base

Base root filesystems are cached as tarballs keyed by their recipe, and podman's layer store lives
in the per-user cache too, so a second run rebuilds only what changed.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.cluster import config as c

DEBIAN_SOURCES = (
    "deb http://deb.debian.org/debian {suite} main",
    "deb http://deb.debian.org/debian {suite}-updates main",
    "deb http://deb.debian.org/debian-security {suite}-security main",
)
_SLIM = (
    '--aptopt=APT::Install-Recommends "false"',
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)
# Image builds reach PyPI through this machine's egress proxy, whose CA is in the host bundle.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

POSTGRES_ENTRYPOINT = """\
#!/bin/sh
# The official image's contract, as k8s/dev/postgres.yaml uses it: initialise PGDATA on first start
# with POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, then run postgres with the given arguments.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA" && chmod 700 "$PGDATA"
    pwfile="$(mktemp)"
    printf '%s\\n' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" >"$pwfile"
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -A scram-sha-256 >/dev/null
    rm -f "$pwfile"
    printf "listen_addresses = '*'\\nunix_socket_directories = '/var/run/postgresql'\\n" \\
        >>"$PGDATA/postgresql.conf"
    printf 'host all all all scram-sha-256\\n' >>"$PGDATA/pg_hba.conf"
    db="${POSTGRES_DB:-$user}"  # initdb makes only "postgres"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \\"$db\\" OWNER \\"$user\\";" |
            postgres --single -D "$PGDATA" -j postgres >/dev/null
    fi
fi
exec postgres -D "$PGDATA" "$@"
"""


class ImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class Base:
    """A root filesystem made by mmdebstrap from Debian packages."""

    name: str
    variant: str
    packages: tuple[str, ...]
    hooks: tuple[str, ...] = ()
    # Trust what this machine trusts: its egress proxy re-signs PyPI with its own CA, and uv
    # (which carries its own roots) sees it only through SSL_CERT_FILE, set on the image.
    trust_host_ca: bool = False

    def customize_hooks(self) -> tuple[str, ...]:
        extra = (f'cp {HOST_CA_BUNDLE} "$1"{HOST_CA_BUNDLE}',) if self.trust_host_ca else ()
        return (*self.hooks, *extra)

    def changes(self) -> tuple[str, ...]:
        return (f"ENV SSL_CERT_FILE={HOST_CA_BUNDLE}",) if self.trust_host_ca else ()

    def key(self) -> str:
        ca = hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest() if self.trust_host_ca else ""
        recipe = [
            c.IMAGES_DEBIAN_SUITE,
            self.variant,
            self.packages,
            self.customize_hooks(),
            _SLIM,
            ca,
        ]
        return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:12]

    @property
    def ref(self) -> str:
        return f"localhost/floodgate-base/{self.name}:{self.key()}"


PYTHON_BASE = Base(
    "python",
    "apt",
    ("python3", "python3-venv", "python3-pip", "ca-certificates", "passwd"),
    # Behave like the python:3.11-slim image the Dockerfile defaults to: pip may install anywhere.
    ('rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED',),
    trust_host_ca=True,
)
REDIS_BASE = Base("redis", "essential", ("redis-server", "redis-tools"))
POSTGRES_BASE = Base("postgres", "essential", ("postgresql-15",))


class Podman:
    """podman with its own store in the per-user cache: it never touches the machine's store."""

    def __init__(self, log: Path) -> None:
        self.store = c.cache_dir() / "podman"
        self.log = log

    def argv(self, *args: str) -> list[str]:
        return [
            "podman",
            f"--root={self.store / 'storage'}",
            f"--runroot={self.store / 'run'}",
            "--storage-driver=overlay",
            "--cgroup-manager=cgroupfs",
            "--events-backend=file",
            "--runtime=runc",
            *args,
        ]

    def run(self, *args: str, timeout: float = 1800) -> str:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as log:
            log.write(f"\n$ podman {' '.join(args)}\n")
            log.flush()
            proc = subprocess.run(
                self.argv(*args),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                timeout=timeout,
                check=False,
            )
            log.write(proc.stdout)
        if proc.returncode != 0:
            raise ImageError(f"podman {' '.join(args)} failed ({proc.returncode}); log: {self.log}")
        return proc.stdout

    def exists(self, ref: str) -> bool:
        probe = subprocess.run(self.argv("image", "exists", ref), capture_output=True, check=False)
        return probe.returncode == 0

    def build(self, ref: str, containerfile: str, context: Path) -> None:
        (context / "Containerfile").write_text(containerfile)
        # No network: these recipes only copy and configure; a RUN step on podman's default
        # network would leave its cni-podman0 bridge on the host after the build.
        self.run(
            "build", "--pull=never", "--network=none",
            "-f", str(context / "Containerfile"), "-t", ref, str(context),
        )  # fmt: skip


def _mmdebstrap(base: Base, out: Path, log: Path) -> None:
    argv = [
        "mmdebstrap",
        f"--variant={base.variant}",
        f"--include={','.join(base.packages)}",
        *_SLIM,
        *(f"--customize-hook={hook}" for hook in base.customize_hooks()),
        "--format=tar",
        c.IMAGES_DEBIAN_SUITE,
        str(out),
        *(s.format(suite=c.IMAGES_DEBIAN_SUITE) for s in DEBIAN_SOURCES),
    ]
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(argv)}\n")
        f.flush()
        proc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, timeout=1800, check=False)
    if proc.returncode != 0:
        raise ImageError(f"mmdebstrap for {base.name} failed; log: {log}")


def ensure_base(podman: Podman, base: Base) -> str:
    """The base imported into podman's store (made by mmdebstrap once per recipe)."""
    if podman.exists(base.ref):
        return base.ref
    tarball = c.cache_dir() / "bases" / f"{base.name}-{base.key()}.tar"
    if not tarball.exists():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        _mmdebstrap(base, partial, podman.log)
        partial.rename(tarball)
        for stale in tarball.parent.glob(f"{base.name}-*.tar"):  # older recipes of this base
            if stale != tarball:
                stale.unlink()
    podman.run(
        "import", *(f"--change={change}" for change in base.changes()), str(tarball), base.ref
    )
    return base.ref


def pinned_version(script: str, variable: str) -> str:
    """A version pinned in one of the tool scripts (`VARIABLE="v1.2.3"`): one place to bump."""
    for line in (c.REPO_ROOT / "scripts" / script).read_text().splitlines():
        if line.startswith(f"{variable}="):
            return line.split('"')[1]
    raise ImageError(f"{variable} not found in scripts/{script}")


def module_dir(module: str, version: str) -> Path:
    """The module's source in the Go module cache (downloaded from the proxy if missing)."""
    info = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return Path(json.loads(info.stdout)["Dir"])


def pause_binary(out: Path) -> None:
    """Kubernetes' pause.c, compiled static (the source registry.k8s.io/pause is built from)."""
    kubernetes = module_dir("k8s.io/kubernetes", pinned_version("tools.sh", "KUBERNETES_VERSION"))
    source = kubernetes / "build" / "pause" / "linux" / "pause.c"
    version = f'-DVERSION="{c.PAUSE_TAG}"'
    subprocess.run(["gcc", "-Os", "-static", version, "-o", str(out), str(source)], check=True)
    subprocess.run(["strip", str(out)], check=True)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


class _Builder:
    def __init__(self, podman: Podman, work: Path) -> None:
        self.podman = podman
        self.work = work

    def _context(self, name: str) -> Path:
        ctx = self.work / name
        ctx.mkdir()
        return ctx

    def pause(self) -> str:
        ref = f"localhost/floodgate/pause:{c.PAUSE_TAG}"
        if not self.podman.exists(ref):
            ctx = self._context("pause")
            pause_binary(ctx / "pause")
            recipe = 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'
            self.podman.build(ref, recipe, ctx)
        return ref

    def static_binary(self, name: str, uid: int = 65534) -> str:
        """A Go binary from .tools/bin on an empty base, tagged with the version it was built at."""
        binary = (c.TOOLS_BIN / name).resolve()
        ref = f"localhost/floodgate/{name}:{binary.parent.name.removeprefix(name + '-')}"
        if not self.podman.exists(ref):
            ctx = self._context(name)
            (ctx / name).write_bytes(binary.read_bytes())
            (ctx / name).chmod(0o755)
            recipe = (
                f'FROM scratch\nCOPY {name} /{name}\nUSER {uid}:{uid}\nENTRYPOINT ["/{name}"]\n'
            )
            self.podman.build(ref, recipe, ctx)
        return ref

    def redis(self) -> str:
        return ensure_base(self.podman, REDIS_BASE)

    def postgres(self) -> str:
        base = ensure_base(self.podman, POSTGRES_BASE)
        recipe = (
            f"FROM {base}\n"
            # The official alpine image's uid/gid 70, which k8s/dev/postgres.yaml runs as:
            # initdb needs the uid to have a passwd entry.
            "RUN sed -i 's/^postgres:x:[0-9]*:[0-9]*:/postgres:x:70:70:/' /etc/passwd"
            " && sed -i 's/^postgres:x:[0-9]*:/postgres:x:70:/' /etc/group\n"
            "COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n"
            "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin\n"
            'ENTRYPOINT ["docker-entrypoint.sh"]\n'
        )
        ref = f"localhost/floodgate/postgres:15-{_digest(recipe + POSTGRES_ENTRYPOINT)}"
        if not self.podman.exists(ref):
            ctx = self._context("postgres")
            (ctx / "entrypoint.sh").write_text(POSTGRES_ENTRYPOINT)
            (ctx / "entrypoint.sh").chmod(0o755)
            self.podman.build(ref, recipe, ctx)
        return ref

    def floodgate(self, tag: str) -> str:
        python = ensure_base(self.podman, PYTHON_BASE)
        # Also under the Dockerfile's default base name: a build through the Docker API
        # (`skaffold build -p podman`) that passes no PYTHON_IMAGE then finds it locally.
        self.podman.run("tag", python, dockerfile_default_base())
        ref = f"localhost/floodgate/floodgate:{tag}"
        self.podman.run(
            "build", "--pull=never", "--network=host",
            f"--build-arg=PYTHON_IMAGE={python}",
            "-f", str(c.REPO_ROOT / "service" / "Dockerfile"), "-t", ref, str(c.REPO_ROOT),
        )  # fmt: skip
        return ref


def docker_io(name: str) -> str:
    """A short image name as Docker resolves it: `redis:7` -> `docker.io/library/redis:7`."""
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def dockerfile_default_base() -> str:
    """service/Dockerfile's default PYTHON_IMAGE, fully qualified."""
    text = (c.REPO_ROOT / "service" / "Dockerfile").read_text()
    found = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    if found is None:
        raise ImageError("service/Dockerfile has no `ARG PYTHON_IMAGE=` default")
    return docker_io(found.group(1))


def registries_conf(registry: str) -> str:
    """containers-registries.conf(5) for the Docker API service: the cluster registry is plain
    HTTP (skaffold pushes through this service, and its push API has no TLS switch)."""
    return f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n'


def _timed(builders: dict[str, Callable[[], str]]) -> tuple[dict[str, str], dict[str, float]]:
    refs: dict[str, str] = {}
    timings: dict[str, float] = {}
    for role, make in builders.items():
        t = time.monotonic()
        refs[role] = make()
        timings[role] = round(time.monotonic() - t, 1)
    return refs, timings


def build_node_images(log: Path) -> tuple[dict[str, str], dict[str, float]]:
    """The images of the node and its add-ons (sandbox, DNS, metrics): {role: local ref}."""
    with tempfile.TemporaryDirectory(prefix="floodgate-images-") as tmp:
        b = _Builder(Podman(log), Path(tmp))
        return _timed(
            {
                "pause": b.pause,
                "coredns": lambda: b.static_binary("coredns"),
                "metrics-server": lambda: b.static_binary("metrics-server", uid=1000),
            }
        )


def build_app_images(log: Path, floodgate_tag: str) -> tuple[dict[str, str], dict[str, float]]:
    """The project's image and the Redis / PostgreSQL images of the chart and k8s/dev/."""
    with tempfile.TemporaryDirectory(prefix="floodgate-images-") as tmp:
        b = _Builder(Podman(log), Path(tmp))
        return _timed(
            {
                "redis": b.redis,
                "postgres": b.postgres,
                "floodgate": lambda: b.floodgate(floodgate_tag),
            }
        )


def push_refs(log: Path, refs: dict[str, str], registry: str) -> dict[str, str]:
    """Push each image to the cluster registry; returns {role: the ref pods pull}."""
    podman = Podman(log)
    pulled: dict[str, str] = {}
    for role, ref in refs.items():
        remote = f"{registry}/{ref.split('/', 1)[1]}"  # localhost/x/y:t -> <registry>/x/y:t
        podman.run("push", "--tls-verify=false", ref, f"docker://{remote}")
        pulled[role] = remote
    return pulled
