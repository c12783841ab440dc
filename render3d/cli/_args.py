"""Checks of command-line arguments, run before any work: a bad value is reported as
``render3d <command>: --<option> ...`` on stderr with exit status 2."""

from __future__ import annotations

import sys
from pathlib import Path


class UsageError(Exception):
    """A bad command-line argument; the message is printed as it is."""


def report(error: Exception) -> int:
    print(error, file=sys.stderr)
    return 2


def check_positive(command: str, args, names) -> None:
    """Each ``args.<name>`` must be > 0 (option ``--name`` with dashes)."""
    for name in names:
        value = getattr(args, name)
        if value <= 0:
            raise UsageError(f"render3d {command}: --{name.replace('_', '-')} expected a positive number, got {value}")


def check_writable_dir(command: str, option: str, folder: Path) -> None:
    """Create `folder` and check that files can be written there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"render3d {command}: cannot write to {option} {folder}: {exc.strerror}") from None
