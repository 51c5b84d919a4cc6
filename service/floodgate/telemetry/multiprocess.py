"""prometheus_client's multiprocess mode under gunicorn: directory, dead workers, process metrics.

- `prepare_directory` (gunicorn `on_starting`, before any worker exists and before prometheus_client
  is imported) empties the directory and exports PROMETHEUS_MULTIPROC_DIR for the workers.
- `worker_exited` (gunicorn `child_exit`, in the arbiter) drops the dead worker's live gauges and
  folds its counters/histograms/summaries into one archive file per type, so counts survive the
  worker and the directory does not grow by three files per recycled worker (max_requests).
- `ServerProcessCollector` reports process_* metrics for the arbiter and every worker, with a `pid`
  label, which multiprocess mode otherwise loses.

Nothing here imports prometheus_client at module level: the arbiter imports this module before the
environment variable that selects prometheus_client's storage is set.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from floodgate.telemetry.exemplars import FILE_PREFIX, remove_exemplars

if TYPE_CHECKING:
    from prometheus_client import Metric

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
_LOCK_FILE: Final = ".floodgate-metrics.lock"
_ARCHIVED_TYPES: Final = ("counter", "histogram", "summary")
# Set in gunicorn workers (post_fork): process metrics then cover the arbiter and all its workers.
ARBITER_PID: int | None = None


def directory() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


def prepare_directory(configured: Path | None) -> tuple[Path, bool]:
    """Create/empty the multiprocess directory and export it. Returns (path, created_by_us)."""
    created = False
    if configured is None and os.environ.get(ENV):
        configured = Path(os.environ[ENV])
    if configured is None:
        # /dev/shm: tmpfs, writable under a read-only root filesystem, gone with the pod.
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108
        configured = Path(tempfile.mkdtemp(prefix="floodgate-metrics-", dir=base))
        created = True
    configured.mkdir(parents=True, exist_ok=True)
    for stale in (*configured.glob("*.db"), *configured.glob(f"{FILE_PREFIX}*")):
        stale.unlink(missing_ok=True)
    os.environ[ENV] = str(configured)
    return configured, created


@contextlib.contextmanager
def _locked(path: Path, operation: int) -> Iterator[None]:
    with (path / _LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, operation)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def worker_exited(pid: int, path: Path | None = None) -> None:
    """Bookkeeping for a dead worker (runs in the arbiter)."""
    path = path or directory()
    if path is None:
        return
    from prometheus_client import multiprocess
    from prometheus_client.mmap_dict import MmapedDict as _MmapedDict

    mmaped_dict: Any = _MmapedDict  # untyped in prometheus_client

    multiprocess.mark_process_dead(pid, str(path))  # type: ignore[no-untyped-call]
    remove_exemplars(path, pid)
    with _locked(path, fcntl.LOCK_EX):
        for kind in _ARCHIVED_TYPES:
            dead = path / f"{kind}_{pid}.db"
            if not dead.exists():
                continue
            # Per-process files hold non-cumulative values (bucket counts, sums): adding is exact.
            archive = mmaped_dict(str(path / f"{kind}_archive.db"))
            try:
                for key, value, _ts, _pos in mmaped_dict.read_all_values_from_file(str(dead)):
                    current, _ = archive.read_value(key)
                    archive.write_value(key, current + value, 0.0)
            finally:
                archive.close()
            dead.unlink()


def collect_locked(path: Path) -> list[Metric]:
    """Merge every process's files; consistent with a concurrent `worker_exited`."""
    from prometheus_client.multiprocess import MultiProcessCollector

    collector: Any = MultiProcessCollector(None, path=str(path))  # type: ignore[no-untyped-call]
    with _locked(path, fcntl.LOCK_SH):
        return list(collector.collect())


def _children(pid: int) -> list[int]:
    try:
        raw = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in raw.split()]
    except OSError:
        pass
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


def server_pids() -> list[int]:
    """The arbiter and its live workers (or just this process outside gunicorn)."""
    if ARBITER_PID is None:
        return [os.getpid()]
    return [ARBITER_PID, *_children(ARBITER_PID)]


class ServerProcessCollector:
    """process_* metrics of every server process, labelled by `pid`."""

    def collect(self) -> Iterable[Metric]:
        from prometheus_client import Metric, ProcessCollector

        merged: dict[str, Metric] = {}
        for pid in server_pids():
            collector = ProcessCollector(pid=_constant(pid), registry=None)
            for family in collector.collect():
                target = merged.get(family.name)
                if target is None:
                    target = merged[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    labels = {**sample.labels, "pid": str(pid)}
                    target.samples.append(sample._replace(labels=labels))
        return list(merged.values())
