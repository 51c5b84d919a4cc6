"""Histogram exemplars (`trace_id` of a sampled request) that also work under gunicorn.

prometheus_client drops exemplars in multiprocess mode (`MmapedValue.set_exemplar` is a no-op),
so this module keeps them itself: the latest exemplar per histogram bucket, in memory, mirrored by
each worker to `exemplars_<pid>.json` in the multiprocess directory (at most once per
`flush_interval`), and merged into the bucket samples whichever worker answers the scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Final

import orjson

if TYPE_CHECKING:  # prometheus_client is imported lazily: the gunicorn arbiter imports this module
    from prometheus_client import Metric

FILE_PREFIX: Final = "exemplars_"
# (histogram family name, sorted label pairs without `le`, le as exposed) -> (trace_id, value, ts)
ExemplarKey = tuple[str, tuple[tuple[str, str], ...], str]
ExemplarValue = tuple[str, float, float]


class ExemplarStore:
    """Latest exemplar per bucket. `record` is called only for sampled requests (about 1 %)."""

    def __init__(self, directory: Path | None = None, flush_interval: float = 1.0) -> None:
        self.directory = directory
        self.flush_interval = flush_interval
        self._latest: dict[ExemplarKey, ExemplarValue] = {}
        self._dirty = False
        self._last_flush = 0.0
        self._flush_scheduled = False
        self._pid = os.getpid()

    def record(self, keys: Iterable[ExemplarKey], trace_id: str, value: float) -> None:
        """One observation's exemplar on each of its buckets: one request updates every
        histogram it was observed in, so they are published together or not at all."""
        entry = (trace_id, value, time.time())
        for key in keys:
            self._latest[key] = entry
        if self.directory is None:
            return
        self._dirty = True
        now = time.monotonic()
        if now - self._last_flush >= self.flush_interval:
            self.flush()
        elif not self._flush_scheduled:
            # Rate-limit file writes; the last exemplar of a burst still lands within the interval.
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_scheduled = True
            loop.call_later(self.flush_interval, self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self.directory is None or not self._dirty:
            return
        if self._pid != os.getpid():  # forked: the parent's exemplars are not ours to publish
            self._latest.clear()
            self._pid = os.getpid()
        self._dirty = False
        self._last_flush = time.monotonic()
        rows = [
            [name, list(labels), le, *value] for (name, labels, le), value in self._latest.items()
        ]
        target = self.directory / f"{FILE_PREFIX}{self._pid}.json"
        tmp = target.with_suffix(".tmp")
        with contextlib.suppress(OSError):  # exemplars are best effort; metrics never fail for them
            tmp.write_bytes(orjson.dumps(rows))
            os.replace(tmp, target)

    def snapshot(self) -> dict[ExemplarKey, ExemplarValue]:
        """Every worker's exemplars (the newest wins per bucket), including this process's own."""
        merged: dict[ExemplarKey, ExemplarValue] = {}
        if self.directory is not None:
            for path in self.directory.glob(f"{FILE_PREFIX}*.json"):
                for key, value in _read(path):
                    if key not in merged or merged[key][2] < value[2]:
                        merged[key] = value
        for key, value in self._latest.items():
            if key not in merged or merged[key][2] < value[2]:
                merged[key] = value
        return merged


def _read(path: Path) -> Iterator[tuple[ExemplarKey, ExemplarValue]]:
    try:
        rows = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return
    for name, labels, le, trace_id, value, ts in rows:
        yield (name, tuple((k, v) for k, v in labels), le), (trace_id, value, ts)


def remove_exemplars(directory: Path, pid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (directory / f"{FILE_PREFIX}{pid}.json").unlink()


def attach(
    families: Iterable[Metric], exemplars: dict[ExemplarKey, ExemplarValue]
) -> Iterator[Metric]:
    """Yield the families with exemplars set on the matching `_bucket` samples."""
    from prometheus_client.samples import Exemplar

    if not exemplars:
        yield from families
        return
    names = {key[0] for key in exemplars}
    for family in families:
        if family.type == "histogram" and family.name in names:
            bucket = family.name + "_bucket"
            samples = []
            for sample in family.samples:
                if sample.name == bucket:
                    labels = sample.labels
                    le = labels.get("le", "")
                    rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                    found = exemplars.get((family.name, rest, le))
                    if found is not None:
                        trace_id, value, ts = found
                        exemplar = Exemplar({"trace_id": trace_id}, value, ts)
                        sample = sample._replace(exemplar=exemplar)
                samples.append(sample)
            family.samples = samples
        yield family
