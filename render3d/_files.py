"""Writing output files whole or not at all.

Each file is written to a temporary name beside it and renamed into place, so a crash, a
full disk or a file-size limit leaves the previous file (if any) as it was, never half a
file. An `OSError` while writing names the file asked for, not the temporary one, so the
command line can report it in one line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def write_files(files: Mapping[Path, bytes]) -> list[Path]:
    """Write every ``{path: data}``; the renames happen only once all of them are written, so
    files that belong together (an OBJ and its MTL) are replaced together or not at all."""
    temps = {Path(path): Path(path).with_name(f".{Path(path).name}.tmp-{os.getpid()}") for path in files}
    try:
        for path, data in files.items():
            write_as(temps[Path(path)], data, Path(path))
        for path, temp in temps.items():
            os.replace(temp, path)
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
    return list(temps)


def write_file(path: Path, data: bytes) -> Path:
    """Write one file whole or not at all (see the module docstring)."""
    return write_files({Path(path): data})[0]


def file_in_the_way(folder: Path) -> Path | None:
    """The nearest of `folder` and its parents that exists and is not a folder: what stops
    `folder` from being created (None when nothing does)."""
    for candidate in (Path(folder), *Path(folder).parents):
        if exists(candidate):
            return None if candidate.is_dir() else candidate
    return None


def exists(path: Path) -> bool:
    """`Path.exists`, False for a path that the system refuses to look up (a name longer than
    the file system allows raises OSError there): nothing can be at it."""
    try:
        return path.exists()
    except OSError:
        return False


def write_as(temp: Path, data: bytes, path: Path) -> None:
    """Write `data` at `temp`, which is to become `path` (renamed into place, or inside a folder
    that is); an OSError names `path`."""
    try:
        temp.write_bytes(data)
    except OSError as error:       # a full disk, a size limit, a read-only folder: name the file asked for
        raise OSError(error.errno, error.strerror, str(path)) from None
