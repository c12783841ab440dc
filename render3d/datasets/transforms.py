"""nerfstudio's `transforms.json` as a posed-image dataset in render3d's convention.

Each frame's OpenGL camera-to-world (x right, y up, z backward) becomes an OpenCV one and its
pixel intrinsics become normalized ones (`Cameras.from_transforms_json`), so items look like
`EG3DDataset` items and the EG3D label [25] of a frame is ready for a GAN.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from render3d._checks import check_choice
from render3d.cameras import Cameras
from render3d.datasets.storage import IMAGE_SUFFIXES, decode_image

TRANSFORMS_FILE = "transforms.json"
# World axes: nerfstudio keeps the capture's axes, often z-up; render3d's world is +Y up.
# "+z" turns a z-up world into a y-up one by a rotation of -90 degrees about x: (x, y, z) -> (x, z, -y).
WORLD_UP = ("+y", "+z")
_Z_UP_TO_Y_UP = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=torch.float64)


def resolve_frame_path(root: Path, file_path: str) -> Path:
    """A frame's `file_path` (relative to the folder of transforms.json) as a file. The
    Blender synthetic scenes write it without suffix (``./train/r_0``): then the first
    existing file with an image suffix is taken."""
    path = root / file_path
    if path.suffix.lower() in IMAGE_SUFFIXES or path.exists():
        return path
    return next((path.with_name(path.name + s) for s in IMAGE_SUFFIXES if path.with_name(path.name + s).exists()),
                path)


def find_transforms(path: str | Path, fn: str) -> Path:
    """`path` itself when it is a transforms.json file, else `path`/transforms.json."""
    path = Path(path)
    candidate = path / TRANSFORMS_FILE if path.is_dir() else path
    if not candidate.is_file():
        raise ValueError(f"{fn}: argument 'path' expected a {TRANSFORMS_FILE} file or a folder holding one, "
                         f"got {str(path)!r}")
    return candidate


class TransformsDataset(torch.utils.data.Dataset):
    """Posed images from a nerfstudio `transforms.json` (the file, or its folder).

    Item i is a dict like `EG3DDataset`'s: ``image`` float32 [3, H, W] in [-1, 1] (images with
    transparency are composited over `background`, RGB in [0, 1]), ``label`` float32 [25]
    (EG3D label: OpenCV cam2world and normalized intrinsics), ``index`` the frame's index.
    world_up: "+y" keeps the world axes as written; "+z" turns a z-up capture (nerfstudio's
        usual) so that +z becomes render3d's +y.
    Every frame must be pinhole without distortion and share one image size; images must
    have that size.
    """

    def __init__(self, path: str | Path, *, world_up: str = "+y", background=(1.0, 1.0, 1.0)) -> None:
        fn = "TransformsDataset"
        check_choice(fn, "world_up", world_up, WORLD_UP)
        self.transforms_path = find_transforms(path, fn)
        meta = json.loads(self.transforms_path.read_text())
        cameras, file_paths = Cameras.from_transforms_json(meta, dtype=torch.float64)
        if world_up == "+z":
            cameras = Cameras(_Z_UP_TO_Y_UP @ cameras.cam2world, cameras.intrinsics, cameras.width, cameras.height)
        missing = [i for i, p in enumerate(file_paths) if p is None]
        if missing:
            raise ValueError(f"{fn}: argument 'path' expected 'file_path' in every frame, got none in frames {missing}")
        root = self.transforms_path.parent
        self.files = [resolve_frame_path(root, p) for p in file_paths]
        absent = [(i, str(f)) for i, f in enumerate(self.files) if not f.is_file()]
        if absent:
            raise ValueError(f"{fn}: argument 'path' expected every frame's image to exist, got {len(absent)} missing: "
                             f"{absent[:5]}")
        self.width, self.height = cameras.width, cameras.height
        self.labels = cameras.to_eg3d_label().float()
        self._background = tuple(int(round(255 * float(c))) for c in background)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"TransformsDataset: index {index} out of range for {len(self)} frames")
        image = decode_image(self.files[index].read_bytes(), self._background,
                             name=f"TransformsDataset: frame {index} ({self.files[index]})")
        if image.shape[:2] != (self.height, self.width):
            raise ValueError(f"TransformsDataset: frame {index} ({self.files[index]}) expected an image of "
                             f"{self.width} x {self.height} (w, h of transforms.json), got "
                             f"{image.shape[1]} x {image.shape[0]}")
        tensor = torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 127.5 - 1
        return {"image": tensor, "label": self.labels[index].clone(), "index": index}

    def cameras(self, labels: torch.Tensor | None = None) -> Cameras:
        """`Cameras` (float32) of a batch of labels [B, 25]; default: every frame."""
        return Cameras.from_eg3d_label(self.labels if labels is None else labels, self.width, self.height)

    def __repr__(self) -> str:
        return f"TransformsDataset({str(self.transforms_path)!r}, {len(self)} frames of {self.width} x {self.height})"
