"""Files of a dataset kept in a folder or an uncompressed zip, read the same way.

`Storage` lists the files by their relative path (always with '/', as `dataset.json`
writes them) and reads their bytes. A zip is opened lazily in each process, so a dataset
holding a `Storage` can be sent to DataLoader workers.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from render3d._checks import error_reason

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class Storage:
    """A folder or a zip archive of files, addressed by relative paths with '/'."""

    def __init__(self, path: str | Path, fn: str = "Storage") -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            self.kind = "folder"
            root = str(self.path)
            self._names = sorted(
                os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                for folder, _, files in os.walk(root) for name in files
            )
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self.kind = "zip"
            self._names = sorted(info.filename for info in self._archive().infolist() if not info.is_dir())
        else:
            what = "a file that is not a zip" if self.path.is_file() else "nothing there"
            raise ValueError(f"{fn}: argument 'path' expected a folder or a zip archive, got {str(self.path)!r} "
                             f"({what})")
        self._name_set = set(self._names)

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_zip": None}  # each worker process opens its own handle

    def names(self) -> list[str]:
        """Every file's relative path, sorted."""
        return list(self._names)

    def image_names(self) -> list[str]:
        """The relative paths of the image files (by suffix), sorted."""
        return [n for n in self._names if n.lower().endswith(IMAGE_SUFFIXES)]

    def __contains__(self, name: str) -> bool:
        return name in self._name_set

    def read(self, name: str) -> bytes:
        if self.kind == "zip":
            return self._archive().read(name)
        return (self.path / name).read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None


def decode_image(data: bytes, background: tuple[int, int, int] = (255, 255, 255), *,
                 name: str = "the image") -> np.ndarray:
    """Image file bytes -> uint8 [H, W, 3] RGB. Grey is repeated; an image with transparency
    (RGBA, LA, palette) is composited over `background` (uint8 RGB), as nerfstudio does
    with Blender renders. Bytes that do not decode (a truncated or corrupted file) raise
    ValueError naming `name`."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                canvas = Image.new("RGBA", rgba.size, (*background, 255))
                return np.asarray(Image.alpha_composite(canvas, rgba).convert("RGB"))
            return np.asarray(image.convert("RGB"))
    except Exception as error:              # PIL raises many types for a damaged file
        raise ValueError(_damaged(name, error)) from None


def verified_image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of image file bytes that decode whole: ValueError when the file is
    damaged or truncated, which the header alone does not show. A PNG's chunk checksums are
    checked (PIL's `verify`, a twentieth of decoding it); other formats are decoded."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            if image.format == "PNG":
                image.verify()
            else:
                image.load()
            return size
    except Exception as error:              # PIL raises many types for a damaged file
        raise ValueError(_damaged("the file", error)) from None


def _damaged(name: str, error: Exception) -> str:
    return f"{name} cannot be decoded as an image, it is damaged or truncated ({error_reason(error)})"


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of image file bytes, from the header alone."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return image.size
