"""Policies from a YAML file: parsing with readable error paths, and the polling reloader."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from floodgate.ratelimit.model import RateLimitPolicy
from floodgate.ratelimit.sources.base import PolicySink, WatchingSource

logger = logging.getLogger("floodgate.ratelimit")

_SCALARS = (str, int, float, bool, type(None))


class PolicyFileError(Exception):
    """A policy file that cannot be applied; `errors` lists every problem with its path."""

    def __init__(self, errors: Sequence[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = list(errors)


def _format_loc(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _format_error(prefix: str, error: Any) -> str:
    message = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = error.get("input")
    if error["type"] not in ("value_error", "missing", "extra_forbidden") and isinstance(
        value, _SCALARS
    ):
        message = f"{message} (got {value!r})"
    return f"{prefix}{_format_loc(error['loc'])}: {message}"


def parse_policy_documents(
    documents: Sequence[object], source: str
) -> tuple[list[RateLimitPolicy], list[str]]:
    """Validate parsed documents (YAML or JSON); errors read `source[doc N].path: message`.

    Documents are numbered from 1, list items (rules[0]) from 0, as in JSON paths.
    """
    policies: list[RateLimitPolicy] = []
    errors: list[str] = []
    defined_in: dict[str, int] = {}
    for number, document in enumerate(documents, start=1):
        prefix = f"{source}[doc {number}]"
        if not isinstance(document, dict):
            errors.append(
                f"{prefix}: a policy document must be a mapping, not {type(document).__name__}"
            )
            continue
        try:
            policy = RateLimitPolicy.model_validate(document)
        except ValidationError as exc:
            errors.extend(_format_error(prefix, error) for error in exc.errors())
            continue
        first = defined_in.setdefault(policy.qualified_name, number)
        if first != number:
            errors.append(
                f"{prefix}.metadata.name: policy {policy.qualified_name} is already in doc {first}"
            )
            continue
        policies.append(policy)
    return policies, errors


def parse_policy_text(text: str, source: str) -> tuple[list[RateLimitPolicy], list[str]]:
    """Parse a YAML stream of one or more `---` documents; empty documents are skipped."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [f"{source}: not valid YAML{where}: {problem}"]
    return parse_policy_documents(documents, source)


def load_policy_file(path: Path) -> list[RateLimitPolicy]:
    """The policies of a file; raises PolicyFileError listing every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyFileError([f"{path}: cannot read: {exc}"]) from exc
    policies, errors = parse_policy_text(text, str(path))
    if errors:
        raise PolicyFileError(errors)
    return policies


def validate_policy_file(path: Path) -> list[str]:
    """Every problem of a policy file, each with its path (`file[doc 2].spec.rules[1].burst: …`)."""
    try:
        load_policy_file(path)
    except PolicyFileError as exc:
        return exc.errors
    return []


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino, st.st_size, st.st_dev)


class FilePolicySource(WatchingSource):
    """A YAML policy file, polled for changes (mtime, inode, size) and re-applied when it changes.

    Polling (not inotify) also sees atomic renames, ConfigMap symlink swaps and network filesystems.
    A file that fails validation is reported and the last good policy set stays applied; the same
    goes for a file that disappears. An empty file is only believed if it is still empty at the next
    poll, so an editor truncating before writing never lifts every limit for a moment.
    """

    def __init__(self, path: Path, *, poll_interval_s: float = 0.25) -> None:
        self.path = path
        self.poll_interval_s = poll_interval_s
        self.last_errors: list[str] = []
        self.applied_digest: bytes | None = None
        self._signature: tuple[int, int, int, int] | None = None
        self._empty_seen = False
        self._task = None
        self._sink: PolicySink | None = None

    async def start(self, sink: PolicySink) -> None:
        self._sink = sink
        self._signature = _signature(self.path)
        text = self._read()
        if text is None:
            raise PolicyFileError(self.last_errors)
        policies, errors = parse_policy_text(text, str(self.path))
        if errors:
            raise PolicyFileError(errors)
        sink.apply_policies(policies, origin=str(self.path))
        self.applied_digest = hashlib.sha256(text.encode()).digest()
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="policy-file-watch")

    def _read(self) -> str | None:
        try:
            return self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.last_errors = [f"{self.path}: cannot read: {exc}"]
            return None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                self.poll()
            except Exception:  # the watcher must outlive any surprise; it is logged, not fatal
                logger.exception("policy file watcher failed on %s", self.path)

    def poll(self) -> bool:
        """Check the file once; True when a new policy set was applied."""
        signature = _signature(self.path)
        if signature == self._signature and not self._empty_seen:
            return False
        sink = self._sink
        assert sink is not None
        if signature is None:
            if self._signature is not None:
                self._reject([f"{self.path}: file is missing"])
            self._signature = None
            return False
        text = self._read()
        if text is None:
            self._signature = signature
            self._reject(self.last_errors)
            return False
        digest = hashlib.sha256(text.encode()).digest()
        if digest == self.applied_digest:
            self._signature = signature
            self._empty_seen = False
            return False
        if not text.strip() and not self._empty_seen:
            self._empty_seen = True  # decide at the next poll
            return False
        self._empty_seen = False
        self._signature = signature
        policies, errors = parse_policy_text(text, str(self.path))
        if errors:
            self._reject(errors)
            return False
        try:
            sink.apply_policies(policies, origin=str(self.path))
        except ValueError as exc:
            self._reject([f"{self.path}: {exc}"])
            return False
        self.applied_digest = digest
        self.last_errors = []
        return True

    def _reject(self, errors: list[str]) -> None:
        self.last_errors = errors
        assert self._sink is not None
        self._sink.report_invalid(errors, origin=str(self.path))
