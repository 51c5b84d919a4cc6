"""`floodgate policy validate FILE`: print every problem of a policy file (for the main CLI)."""

from __future__ import annotations

import pathlib
from typing import TextIO

from floodgate.ratelimit.sources.file import PolicyFileError, load_policy_file


def validate_command(path: pathlib.Path, out: TextIO) -> int:
    """Validate `path`, print each error on its own line; 0 when valid, 1 otherwise."""
    try:
        policies = load_policy_file(path)
    except PolicyFileError as exc:
        for error in exc.errors:
            print(error, file=out)
        count = len(exc.errors)
        print(f"{path}: {count} error{'s' if count != 1 else ''}", file=out)
        return 1
    rules = sum(len(p.spec.rules) for p in policies)
    print(f"{path}: OK ({len(policies)} policies, {rules} rules)", file=out)
    return 0
