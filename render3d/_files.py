"""Writing output files whole or not at all.

Each file is written to a temporary name beside it and renamed into place, so a crash, a
full disk or a file-size limit leaves the previous file (if any) as it was, never half a
file. An `OSError` while writing names the file asked for, not the temporary one, so the
command line can report it in one line.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Mapping
from pathlib import Path

# Write failures that come from the machine, not from render3d: the disk, a quota or a size
# limit is full, or the folder is read-only. The command line reports them in one line.
STORAGE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def write_files(files: Mapping[Path, bytes]) -> list[Path]:
    """Write every ``{path: data}``; the renames happen only once all of them are written, so
    files that belong together (an OBJ and its MTL) are replaced together or not at all."""
    temps = {Path(path): temp_path(Path(path)) for path in files}
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


def temp_path(path: Path) -> Path:
    """The hidden name beside `path` that it is written under before the rename; it keeps the
    suffix, for writers that choose the format by it (ffmpeg)."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def write_as(temp: Path, data: bytes, path: Path) -> None:
    """Write `data` at `temp`, which is to become `path` (renamed into place, or inside a folder
    that is); an OSError names `path`."""
    try:
        temp.write_bytes(data)
    except OSError as error:       # a full disk, a size limit, a read-only folder: name the file asked for
        raise OSError(error.errno, error.strerror, str(path)) from None


def npz_bytes(**arrays) -> bytes:
    """The bytes `numpy.savez_compressed` writes for `arrays`, for `write_file`."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()
