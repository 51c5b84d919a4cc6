"""Summaries of py-spy's collapsed stacks ("frame;frame;frame count" per line)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^)]*?)(?::(?P<line>\d+))?\)$")
_ROOTS = ("site-packages/", "/lib/python3")


def _short(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for root in _ROOTS:
        if root in path:
            path = path.split(root, 1)[1]
            break
    path = path.split("/service/", 1)[-1]
    return f"{m.group('func')} ({path})"


def _package(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    path = m.group("file") if m else frame
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/service/floodgate/" in path:
        parts = path.split("/service/floodgate/", 1)[1].split("/")
        return "floodgate/" + (parts[0] if len(parts) > 1 else parts[0].removesuffix(".py"))
    if "/lib/python3" in path:
        return "stdlib:" + path.split("/lib/python3", 1)[1].split("/", 2)[1].removesuffix(".py")
    return path


def summarise(raw: str) -> dict[str, Any]:
    """Self time per function, inclusive time per function and self time per package (shares)."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    package: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        self_time[_short(frames[-1])] += n
        package[_package(frames[-1])] += n
        for f in {_short(f) for f in frames}:
            inclusive[f] += n

    def top(counter: Counter[str], k: int) -> list[tuple[str, float]]:
        return [(name, round(c / total, 4)) for name, c in counter.most_common(k)] if total else []

    return {
        "samples": total,
        "self": top(self_time, 25),
        "inclusive": top(inclusive, 40),
        "packages": top(package, 15),
    }


def render(summary: dict[str, Any], top: int = 12) -> str:
    lines = [f"{summary['samples']} samples; self time by package:"]
    lines += [f"  {share:6.1%}  {name}" for name, share in summary["packages"][:top]]
    lines.append("self time by function:")
    lines += [f"  {share:6.1%}  {name}" for name, share in summary["self"][:top]]
    return "\n".join(lines)
