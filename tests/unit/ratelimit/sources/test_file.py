"""Policy files: error paths, validate_command, and the polling reloader's decisions."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from floodgate.ratelimit import (
    FilePolicySource,
    PolicyFileError,
    RateLimitPolicy,
    parse_policy_text,
    validate_policy_file,
)
from floodgate.ratelimit.cli import validate_command
from tests.unit.ratelimit.builders import policy_doc, rule_doc

BROKEN = """\
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: reads, namespace: shop}
spec:
  rules:
  - name: per-client
    limit: {requests: 100, period: 1m}
---
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: writes}
spec:
  mode: Enforced
  rules:
  - name: a
    limit: {requests: 10, period: 1x}
  - name: b
    match: {path: {type: RegularExpression, value: "/x(["}}
    limit: {requests: 10, period: 1m}
    burst: -2
  - name: a
    limit: {requests: 1, period: 1s}
---
apiVersion: floodgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: reads, namespace: shop}
spec:
  rules:
  - {name: again, limit: {requests: 1, period: 1s}, colour: blue}
"""


def write(path: Path, *docs: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump_all(list(docs)))
    return path


def test_errors_carry_file_document_and_field_paths(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    errors = validate_policy_file(path)
    p = str(path)
    assert errors == [
        f"{p}[doc 2].spec.mode: Input should be 'Enforce' or 'Shadow' (got 'Enforced')",
        f"{p}[doc 2].spec.rules[0].limit.period: '1x' is not a period: use a whole number "
        "followed by s, m, h or d (e.g. 1s, 10s, 1m, 1h, 1d)",
        f"{p}[doc 2].spec.rules[1].match.path: invalid regular expression '/x([': "
        "unterminated character set at position 3",
        f"{p}[doc 2].spec.rules[1].burst: Input should be greater than or equal to 0 (got -2)",
        f"{p}[doc 3].spec.rules[0].colour: Extra inputs are not permitted",
    ]


def test_duplicate_policy_across_documents(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", policy_doc("a"), policy_doc("b"), policy_doc("a"))
    assert validate_policy_file(path) == [
        f"{path}[doc 3].metadata.name: policy shop/a is already in doc 1"
    ]


def test_yaml_syntax_error_has_a_position() -> None:
    _, errors = parse_policy_text("spec: [unclosed\n", "f.yaml")
    assert len(errors) == 1
    assert errors[0].startswith("f.yaml: not valid YAML (line 2, column 1)")


def test_non_mapping_document() -> None:
    _, errors = parse_policy_text("- a\n- b\n", "f.yaml")
    assert errors == ["f.yaml[doc 1]: a policy document must be a mapping, not list"]


def test_validate_command_prints_every_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN)
    out = io.StringIO()
    assert validate_command(path, out) == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 6
    assert lines[-1] == f"{path}: 5 errors"


def test_validate_command_ok(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ok.yaml", policy_doc("a", rule_doc("x"), rule_doc("y")), policy_doc("b")
    )
    out = io.StringIO()
    assert validate_command(path, out) == 0
    assert out.getvalue() == f"{path}: OK (2 policies, 3 rules)\n"


def test_validate_command_missing_file(tmp_path: Path) -> None:
    out = io.StringIO()
    assert validate_command(tmp_path / "nope.yaml", out) == 1
    assert "cannot read" in out.getvalue()


class RecordingSink:
    def __init__(self) -> None:
        self.applied: list[list[str]] = []
        self.rejected: list[list[str]] = []

    def apply_policies(
        self, policies: Sequence[RateLimitPolicy], *, origin: str, generation: int | None = None
    ) -> None:
        self.applied.append([p.qualified_name for p in policies])

    def report_invalid(self, errors: Sequence[str], *, origin: str) -> None:
        self.rejected.append(list(errors))


def bump(path: Path) -> None:
    """Make sure the next poll sees a new signature even on coarse-mtime filesystems."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def test_file_source_applies_changes_and_keeps_last_good(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", policy_doc("a"))
    sink = RecordingSink()
    source = FilePolicySource(path, poll_interval_s=3600)
    await source.start(sink)
    try:
        assert sink.applied == [["shop/a"]]
        assert not source.poll()  # unchanged

        write(path, policy_doc("a"), policy_doc("b"))
        bump(path)
        assert source.poll()
        assert sink.applied[-1] == ["shop/a", "shop/b"]

        path.write_text("kind: [")
        bump(path)
        assert not source.poll()
        assert sink.applied[-1] == ["shop/a", "shop/b"]  # kept
        assert "not valid YAML" in sink.rejected[-1][0]
        assert not source.poll()  # reported once, not at every poll

        path.unlink()
        assert not source.poll()
        assert sink.rejected[-1] == [f"{path}: file is missing"]

        replacement = write(tmp_path / "new.yaml", policy_doc("c"))
        replacement.rename(path)  # atomic replace, as editors and ConfigMaps do
        assert source.poll()
        assert sink.applied[-1] == ["shop/c"]
    finally:
        await source.close()


async def test_empty_file_is_believed_only_at_the_second_look(tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", policy_doc("a"))
    sink = RecordingSink()
    source = FilePolicySource(path, poll_interval_s=3600)
    await source.start(sink)
    try:
        path.write_text("")
        bump(path)
        assert not source.poll()
        assert source.poll()
        assert sink.applied[-1] == []
    finally:
        await source.close()


async def test_invalid_file_at_start_raises(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(BROKEN)
    with pytest.raises(PolicyFileError) as caught:
        await FilePolicySource(path).start(RecordingSink())
    assert len(caught.value.errors) == 5
