"""The kernel builds in the cache other than this process's own, and their removal.

A finished build's BUILD_OK marker records where its sources and torch are (its folder's name is
a digest) and is touched by each load. A new build removes the older builds of the same sources
folder and torch, but for the two used last, so that switching a branch back rebuilds nothing;
``render3d build --prune`` also removes the builds whose checkout or environment is gone. A
folder is removed only while its build lock is free: never under a process building or loading
it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ._build import build_key, cache_root, source_root, torch_dir

SUPERSEDED_KEPT = 2   # per flavour, of this sources folder and torch: the ones used last


@dataclass
class CachedBuild:
    """A build folder in the cache other than this process's own; `reason` says why it can go,
    and is None for a build that another checkout or environment still uses."""

    directory: Path
    size: int
    last_used: float
    reason: str | None
    superseded: bool = False
    flavour: str = ""


def _size(directory: Path) -> int:
    total = 0
    for path in directory.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return total


def other_builds() -> list[CachedBuild]:
    """The build folders under the cache's ``ext/`` other than this process's two (CPU and, with a
    CUDA torch, CUDA), each with why it can go: superseded (the sources or flags in its folder
    have changed since, with the same torch), its sources or torch gone, unfinished (failed or
    killed), or built before builds recorded their sources."""
    root = cache_root() / "ext"
    if not root.is_dir():
        return []
    own = {build_key(False)} | ({build_key(True)} if torch.version.cuda else set())
    here = (str(source_root()), torch_dir())
    found = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in own):
        marker = directory / "BUILD_OK"
        superseded = False
        try:
            record = json.loads(marker.read_text())
            sources, torch_folder = record["sources"], record["torch_dir"]
        except FileNotFoundError:
            reason = "unfinished: a build that failed or was stopped"
        except (OSError, ValueError, KeyError, TypeError):
            reason = "built by an earlier render3d, which did not record its sources"
        else:
            if (sources, torch_folder) == here:
                superseded = True
                reason = "superseded: the sources here have changed since"
            elif not (Path(sources) / "schema.cpp").is_file():
                reason = f"its sources are gone ({sources})"
            elif not Path(torch_folder).is_dir():
                reason = f"its torch is gone ({torch_folder})"
            else:
                reason = None
        try:
            last_used = (marker if marker.exists() else directory).stat().st_mtime
        except OSError:
            last_used = 0.0
        flavour = directory.name.rsplit("-", 2)[-2] if directory.name.count("-") >= 2 else ""
        found.append(CachedBuild(directory, _size(directory), last_used, reason, superseded, flavour))
    return found


@contextlib.contextmanager
def _lock_if_free(path: Path):
    """Yields whether the lock on `path` was free (and is now held): a build that another process
    is building or loading is never removed under it."""
    try:
        handle = open(path, "a+")
    except OSError:
        yield False
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_build(build: CachedBuild) -> str | None:
    """Removes one build folder and its lock file; returns why it could not, or None."""
    lock = build.directory.parent / f"{build.directory.name}.lock"
    with _lock_if_free(lock) as free:
        if not free:
            return "another process is building or loading it"
        try:
            shutil.rmtree(build.directory)
        except OSError as error:
            return f"{error.strerror or error}: {error.filename or build.directory}"
        lock.unlink(missing_ok=True)
    return None


def remove_orphan_locks() -> None:
    """Removes the lock files in the cache whose build folder is gone (and that nobody holds)."""
    root = cache_root() / "ext"
    for lock in sorted(root.glob("*.lock")) if root.is_dir() else []:
        if (root / lock.stem).is_dir():
            continue
        with _lock_if_free(lock) as free:
            if free:
                lock.unlink(missing_ok=True)


def remove_superseded(keep: int = SUPERSEDED_KEPT) -> None:
    """After a new build: the older builds of the same sources folder and torch go, but for the
    `keep` of each flavour used last. Never fails the build that called it."""
    try:
        superseded = sorted((b for b in other_builds() if b.superseded), key=lambda b: b.last_used, reverse=True)
        kept: dict[str, int] = {}
        removed, freed = 0, 0
        for build in superseded:
            kept[build.flavour] = kept.get(build.flavour, 0) + 1
            if kept[build.flavour] > keep and remove_build(build) is None:
                removed, freed = removed + 1, freed + build.size
    except Exception:   # tidying up must never fail the build that has just succeeded
        return
    if removed:
        print(f"render3d: removed {removed} older kernel build{'s' if removed > 1 else ''} of these sources "
              f"({freed / 1e6:.1f} MB) from {cache_root() / 'ext'}", file=sys.stderr, flush=True)
