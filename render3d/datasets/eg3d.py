"""EG3D's posed-image format: a folder or an uncompressed zip of images plus `dataset.json`.

`dataset.json` holds ``{"labels": [[relpath, [25 floats]], ...]}``: relpath is the image's
path inside the folder or zip, with '/'; the 25 floats are 16 of the OpenCV camera-to-world
matrix (row-major; camera x right, y down, z forward; world +Y up) and 9 of the intrinsics
normalized by the image size (row-major; FFHQ: fx = fy = 4.2647, cx = cy = 0.5).

Every entry is validated (`read_labels`), and a malformed one is reported with its index and
file name, never dropped. `EG3DDataset` serves images and labels to a DataLoader.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from render3d._files import write_file
from render3d.cameras import Cameras
from render3d.cameras._validate import RIGID_TOL
from render3d.datasets.storage import Storage, decode_image, image_size
from render3d.datasets.transforms import TRANSFORMS_FILE

LABEL_FILE = "dataset.json"
LABEL_LENGTH = 25


@dataclass(frozen=True)
class Problem:
    """A malformed dataset entry: `index` in the label list (None for an image that has no
    entry, or for the label file itself), the `file` it names, and what is wrong."""

    index: int | None
    file: str | None
    message: str

    def __str__(self) -> str:
        where = "no entry" if self.index is None else f"entry {self.index}"
        return f"{where} ({self.file or '-'}): {self.message}"


def _pose_problem(label: np.ndarray) -> str | None:
    """What is wrong with one 25-float label (float64), or None."""
    if not np.isfinite(label).all():
        bad = int(np.flatnonzero(~np.isfinite(label))[0])
        return f"label value {bad} is {label[bad]} (expected finite numbers)"
    pose, k = label[:16].reshape(4, 4), label[16:].reshape(3, 3)
    if np.abs(pose[3] - (0, 0, 0, 1)).max() > RIGID_TOL:
        return f"cam2world last row is {pose[3].tolist()} (expected 0, 0, 0, 1)"
    rot = pose[:3, :3]
    error = np.abs(rot.T @ rot - np.eye(3)).max()
    if error > RIGID_TOL:
        return f"cam2world rotation is not rigid: max|R^T R - I| = {error:.3g} (expected <= {RIGID_TOL})"
    if np.linalg.det(rot) < 0:
        return "cam2world rotation has det -1 (a reflection, expected a rotation)"
    if max(np.abs(k[2] - (0, 0, 1)).max(), abs(k[1, 0])) > RIGID_TOL:
        return f"intrinsics rows 1, 2 are {k[1:].tolist()} (expected (0, fy, cy), (0, 0, 1))"
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        return f"intrinsics focal lengths are fx={k[0, 0]}, fy={k[1, 1]} (expected positive)"
    return None


def read_labels(storage: Storage) -> tuple[list[str], np.ndarray, list[Problem]]:
    """Parse and validate `dataset.json` in `storage`.

    Returns the labelled files (in label order), their labels as float64 [N, 25] (a malformed
    label's row is NaN), and every problem found: unreadable JSON, an entry that is not
    [relpath, [25 numbers]], a missing or duplicated file, a non-finite value, a non-rigid
    pose, bad intrinsics, and images in the folder that have no entry.
    """
    if LABEL_FILE not in storage:
        missing = f"no {LABEL_FILE} in {storage.path}{_where_labels_are(storage)}"
        return [], np.zeros((0, LABEL_LENGTH)), [Problem(None, LABEL_FILE, missing)]
    try:
        meta = json.loads(storage.read(LABEL_FILE))
    except (ValueError, UnicodeDecodeError) as exc:
        return [], np.zeros((0, LABEL_LENGTH)), [Problem(None, LABEL_FILE, f"not valid JSON: {exc}")]
    entries = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(entries, list):
        got = f"keys {sorted(meta)}" if isinstance(meta, dict) else type(meta).__name__
        return [], np.zeros((0, LABEL_LENGTH)), [Problem(None, LABEL_FILE,
                                                         f"expected {{'labels': [[relpath, [25 floats]], ...]}}, "
                                                         f"got {got}")]
    names: list[str] = []
    labels = np.full((len(entries), LABEL_LENGTH), np.nan)
    problems: list[Problem] = []
    first_index: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
            names.append("")
            problems.append(Problem(i, None, f"expected [relpath, [25 floats]], got {str(entry)[:80]}"))
            continue
        name, values = entry
        names.append(name)
        if name in first_index:
            problems.append(Problem(i, name, f"duplicate of entry {first_index[name]}"))
            continue
        first_index[name] = i
        if name not in storage:
            problems.append(Problem(i, name, "file not found"))
            continue
        if not isinstance(values, (list, tuple)) or len(values) != LABEL_LENGTH:
            got = f"{len(values)} values" if isinstance(values, (list, tuple)) else type(values).__name__
            problems.append(Problem(i, name, f"label has {got} (expected {LABEL_LENGTH} floats)"))
            continue
        try:
            label = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            problems.append(Problem(i, name, f"label holds non-numbers: {str(values)[:80]}"))
            continue
        if (message := _pose_problem(label)) is not None:
            problems.append(Problem(i, name, message))
            continue
        labels[i] = label
    problems += [Problem(None, name, f"image has no entry in {LABEL_FILE}")
                 for name in storage.image_names() if name not in first_index]
    return names, labels, problems


def _where_labels_are(storage: Storage) -> str:
    """For a folder or zip without a top-level `dataset.json`, what it is instead, as the
    usual mistakes make it: the dataset's images folder, a folder or zip holding the dataset
    one level down, a nerfstudio capture. Empty when none of them."""
    if storage.kind == "folder" and (storage.path.parent / LABEL_FILE).is_file():
        return f" (there is one in {storage.path.parent}: pass that folder)"
    nested = [name for name in storage.names() if name.rsplit("/", 1)[-1] == LABEL_FILE]
    if nested:
        inner = min(nested, key=lambda name: name.count("/")).rsplit("/", 1)[0]
        if storage.kind == "folder":
            return f" (there is one in {storage.path / inner}: pass that folder)"
        return f" (the zip holds one in {inner}/; EG3D's dataset tool writes it at the top of the zip)"
    if TRANSFORMS_FILE in storage:
        return (f" (it holds a nerfstudio {TRANSFORMS_FILE}: the views of one scene, while a 3D-aware GAN learns from "
                "many subjects, one posed image each, in EG3D's format)")
    return ""


def write_labels(folder: str | Path, names: Sequence[str], labels) -> Path:
    """Write `dataset.json` into `folder`: `names` (relative paths with '/') and `labels`
    [N, 25] (array or tensor). Returns the file's path."""
    labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.float64)
    if labels.shape != (len(names), LABEL_LENGTH):
        raise ValueError(f"write_labels: argument 'labels' expected shape [{len(names)}, {LABEL_LENGTH}] "
                         f"(one per name), got {list(labels.shape)}")
    path = Path(folder) / LABEL_FILE
    payload = {"labels": [[str(n), [float(v) for v in row]] for n, row in zip(names, labels)]}
    return write_file(path, json.dumps(payload).encode())


def _summarize(problems: list[Problem], limit: int = 5) -> str:
    shown = "; ".join(str(p) for p in problems[:limit])
    more = f"; and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} malformed {'entry' if len(problems) == 1 else 'entries'}: {shown}{more}"


class EG3DDataset(torch.utils.data.Dataset):
    """Posed images in EG3D's format (a folder or an uncompressed zip with `dataset.json`).

    Item i is a dict: ``image`` float32 [3, H, W] in [-1, 1], ``label`` float32 [25] (EG3D
    label, see the module docstring), ``index`` the entry's index in `dataset.json`, and
    ``xflip`` whether the item is mirrored. `cameras(batch["label"])` turns a batch of labels
    into `Cameras`.

    xflip: double the dataset with left-right mirrored copies (items N .. 2N - 1). Unlike
        EG3D's own `--mirror` flag, which flips the image and keeps its label, a mirrored item
        here carries the mirrored camera (`Cameras.mirrored`): the image of the world mirrored
        in x, so image and pose stay consistent.
    resolution: the expected square image size; every image must share one size (checked on
        the first image here and on each image as it is read).

    Raises ValueError, naming the first few, when any entry is malformed (`render3d dataset
    check PATH` lists them all).
    """

    def __init__(self, path: str | Path, *, xflip: bool = False, resolution: int | None = None) -> None:
        fn = "EG3DDataset"
        self.storage = Storage(path, fn)
        names, labels, problems = read_labels(self.storage)
        if LABEL_FILE not in self.storage:
            raise ValueError(f"{fn}: argument 'path' expected an EG3D dataset (a folder or zip with {LABEL_FILE}), "
                             f"got {problems[0].message}")
        if problems:
            raise ValueError(f"{fn}: argument 'path' expected a well-formed EG3D dataset, got {_summarize(problems)} "
                             f"(`render3d dataset check {path}` lists them all)")
        if not names:
            raise ValueError(f"{fn}: argument 'path' expected at least one labelled image, got an empty "
                             f"{LABEL_FILE} in {path}")
        self.names = names
        self.width, self.height = image_size(self.storage.read(names[0]))
        if resolution is not None and (self.width, self.height) != (resolution, resolution):
            raise ValueError(f"{fn}: argument 'resolution' expected the images' size, got {resolution} while "
                             f"entry 0 ({names[0]}) is {self.width} x {self.height}")
        self.xflip = bool(xflip)
        self.labels = torch.from_numpy(labels).float()
        cameras = Cameras.from_eg3d_label(torch.from_numpy(labels), self.width, self.height)
        self._mirrored_labels = cameras.mirrored().to_eg3d_label().float()

    def __len__(self) -> int:
        return len(self.names) * (2 if self.xflip else 1)

    def __getitem__(self, item: int) -> dict:
        if not 0 <= item < len(self):
            raise IndexError(f"EG3DDataset: index {item} out of range for {len(self)} items")
        index, flip = item % len(self.names), item >= len(self.names)
        image = decode_image(self.storage.read(self.names[index]),
                             name=f"EG3DDataset: entry {index} ({self.names[index]})")
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"EG3DDataset: entry {index} ({self.names[index]}) expected an image of "
                             f"{self.width} x {self.height}, got {image.shape[1]} x {image.shape[0]}")
        if flip:
            image = image[:, ::-1]
        tensor = torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 127.5 - 1
        label = self._mirrored_labels[index] if flip else self.labels[index]
        return {"image": tensor, "label": label.clone(), "index": index, "xflip": flip}

    def cameras(self, labels: torch.Tensor | None = None) -> Cameras:
        """`Cameras` (float32) of a batch of labels [B, 25] at this dataset's image size;
        default: every entry, unmirrored."""
        return Cameras.from_eg3d_label(self.labels if labels is None else labels, self.width, self.height)

    def __repr__(self) -> str:
        return (f"EG3DDataset({str(self.storage.path)!r}, {len(self.names)} images of {self.width} x {self.height}, "
                f"xflip={self.xflip})")
