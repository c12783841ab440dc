"""Check a posed-image dataset: every malformed entry, counts, sizes, pose statistics and a
picture of the cameras (what `render3d dataset check` prints and writes).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from render3d.cameras import Cameras
from render3d.datasets.eg3d import LABEL_FILE, Problem, read_labels
from render3d.datasets.storage import Storage, verified_image_size
from render3d.datasets.transforms import TRANSFORMS_FILE, resolve_frame_path

FORMATS = ("eg3d", "transforms")


@dataclass
class DatasetReport:
    """What `check_dataset` found.

    entries: how many entries the label file lists; problems: every malformed entry;
    image_sizes: (width, height) -> how many labelled images have it; cameras: the cameras of
    the well-formed entries (float64), or None when there are none.
    """

    path: str
    format: str
    entries: int
    problems: list[Problem] = field(default_factory=list)
    image_sizes: dict[tuple[int, int], int] = field(default_factory=dict)
    cameras: Cameras | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def statistics(self) -> dict:
        """Pose statistics of the well-formed entries: yaw and pitch (radians, EG3D's
        convention around the world origin: yaw pi/2 and pitch pi/2 is the camera on +z looking
        at the origin), radius (distance from the origin, world units), normalized focal
        lengths and principal point, and the point nearest to every optical axis (where the
        cameras look; least squares)."""
        if self.cameras is None:
            return {}
        yaw, pitch, radius = (t.numpy() for t in self.cameras.to_yaw_pitch())
        k = self.cameras.intrinsics.numpy()

        def summary(x: np.ndarray) -> dict:
            return {"min": float(x.min()), "median": float(np.median(x)), "max": float(x.max()),
                    "mean": float(x.mean()), "std": float(x.std())}

        return {
            "yaw": summary(yaw), "pitch": summary(pitch), "radius": summary(radius),
            "fx": summary(k[:, 0, 0]), "fy": summary(k[:, 1, 1]), "cx": summary(k[:, 0, 2]),
            "cy": summary(k[:, 1, 2]), "look_at": _nearest_point_to_axes(self.cameras).tolist(),
        }

    def to_dict(self) -> dict:
        return {
            "path": self.path, "format": self.format, "entries": self.entries, "well_formed": self.entries
            - len({p.index for p in self.problems if p.index is not None}),
            "problems": [{"index": p.index, "file": p.file, "message": p.message} for p in self.problems],
            "image_sizes": {f"{w}x{h}": n for (w, h), n in self.image_sizes.items()},
            "statistics": self.statistics(),
        }


def _nearest_point_to_axes(cameras: Cameras) -> np.ndarray:
    """[3] point minimizing the summed squared distance to every camera's optical axis."""
    centres = cameras.centers.numpy()
    forward = cameras.cam2world[:, :3, 2].numpy()
    projector = np.eye(3) - forward[:, :, None] * forward[:, None, :]
    a, b = projector.sum(0), np.einsum("nij,nj->i", projector, centres)
    return np.linalg.lstsq(a, b, rcond=None)[0]


def detect_format(path: str | Path) -> str:
    """"transforms" for a transforms.json file or a folder holding one (and no dataset.json),
    else "eg3d"."""
    path = Path(path)
    if path.is_file() and path.name == TRANSFORMS_FILE:
        return "transforms"
    if path.is_dir() and (path / TRANSFORMS_FILE).is_file() and not (path / LABEL_FILE).is_file():
        return "transforms"
    return "eg3d"


def check_dataset(path: str | Path, *, progress: bool = False) -> DatasetReport:
    """Validate every entry of an EG3D dataset (folder or zip) or a nerfstudio transforms.json.

    Finds: a missing or unreadable image, a label that is not 25 finite numbers, a non-rigid
    rotation, bad intrinsics, duplicates, images without an entry, and images whose size
    differs from the most common one (or, for transforms.json, from its w, h). Never raises
    for a malformed entry: each becomes a `Problem`. `progress`: a progress bar over the
    entries (every image is read).
    """
    if detect_format(path) == "transforms":
        return _check_transforms(Path(path), progress)
    return _check_eg3d(Path(path), progress)


def _entries(items, progress: bool):
    from tqdm import tqdm

    return tqdm(items, desc="entries", unit="entry", disable=not progress, leave=False)


def _check_eg3d(path: Path, progress: bool = False) -> DatasetReport:
    storage = Storage(path, "check_dataset")
    names, labels, problems = read_labels(storage)
    report = DatasetReport(str(path), "eg3d", len(names), problems)
    bad = {p.index for p in problems}
    sizes: dict[int, tuple[int, int]] = {}
    for i, name in enumerate(_entries(names, progress)):
        if i in bad:
            continue
        try:
            sizes[i] = _image_size(lambda: storage.read(name))
        except ValueError as exc:
            problems.append(Problem(i, name, str(exc)))
    storage.close()
    _check_sizes(report, sizes, names, expected=None)
    good = sorted(sizes)
    if good:
        width, height = sizes[good[0]]
        report.cameras = Cameras.from_eg3d_label(torch.from_numpy(labels[good]), width, height)
    report.problems.sort(key=lambda p: (p.index is None, p.index or 0))
    return report


def _check_sizes(report: DatasetReport, sizes: dict[int, tuple[int, int]], names: list[str],
                 expected: tuple[int, int] | None) -> None:
    """Count sizes, report each image whose size is not `expected` (default: the most common)
    and remove it from `sizes`, which then holds the images of the one good size."""
    report.image_sizes = dict(Counter(sizes.values()).most_common())
    if not sizes:
        return
    expected = expected or next(iter(report.image_sizes))
    for i, size in sizes.items():
        if size != expected:
            report.problems.append(Problem(i, names[i], f"image is {size[0]} x {size[1]}, expected "
                                                        f"{expected[0]} x {expected[1]}"))
    for i in [i for i, s in sizes.items() if s != expected]:
        del sizes[i]


def _image_size(read: Callable[[], bytes]) -> tuple[int, int]:
    """(width, height) of the image that `read` returns, checked whole (a truncated file
    fails training only when its turn comes); ValueError saying what is wrong."""
    try:
        data = read()
    except Exception as exc:                # OSError; a zip member's BadZipFile (CRC) or zlib.error
        raise ValueError(f"cannot read the image: {exc}") from None
    return verified_image_size(data)


def _check_transforms(path: Path, progress: bool = False) -> DatasetReport:
    file = path if path.is_file() else path / TRANSFORMS_FILE
    try:
        meta = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        return DatasetReport(str(path), "transforms", 0, [Problem(None, TRANSFORMS_FILE, f"cannot read: {exc}")])
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list):
        return DatasetReport(str(path), "transforms", 0,
                             [Problem(None, TRANSFORMS_FILE, "expected a dict with a 'frames' list")])
    report = DatasetReport(str(path), "transforms", len(frames))
    names, cameras, sizes = [], {}, {}
    for i, frame in enumerate(_entries(frames, progress)):
        name = frame.get("file_path") if isinstance(frame, dict) else None
        names.append(name)
        if not isinstance(name, str):
            report.problems.append(Problem(i, None, "frame has no 'file_path'"))
            continue
        try:
            # One frame at a time, so that every malformed frame is found, not just the first.
            cameras[i], _ = Cameras.from_transforms_json({**meta, "frames": [frame]}, dtype=torch.float64)
        except ValueError as exc:
            message = str(exc).split(": ", 1)[-1].replace("in frame 0", "").replace("in camera 0", "").strip()
            report.problems.append(Problem(i, name, message))
            continue
        image = resolve_frame_path(file.parent, name)
        if not image.is_file():
            report.problems.append(Problem(i, name, "file not found"))
            continue
        try:
            sizes[i] = _image_size(image.read_bytes)
        except ValueError as exc:
            report.problems.append(Problem(i, name, str(exc)))
    expected = None
    if cameras:
        first = next(iter(cameras.values()))
        expected = (first.width, first.height)
    _check_sizes(report, sizes, names, expected)
    good = sorted(sizes)
    if good:
        report.cameras = Cameras.cat([cameras[i] for i in good])
    report.problems.sort(key=lambda p: (p.index is None, p.index or 0))
    return report


def histogram_lines(values: np.ndarray, lo: float, hi: float, bins: int = 12, width: int = 40,
                    unit: str = "") -> list[str]:
    """A text histogram of `values` over [lo, hi]: one line per bin, bars of '#'."""
    counts, edges = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    top = max(int(counts.max()), 1)
    return [f"  {edges[i]:8.2f} .. {edges[i + 1]:8.2f}{unit} {int(c):7d} {'#' * math.ceil(width * c / top)}"
            for i, c in enumerate(counts)]
