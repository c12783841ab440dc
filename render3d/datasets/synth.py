"""A synthetic posed-image dataset whose 3D truth is known, so that learned geometry can be scored.

`generate_synthetic(out, config)` writes, deterministically from `config.seed`:

    out/dataset.json          EG3D labels (25 floats per image: OpenCV cam2world, normalized intrinsics)
    out/images/000000.png     RGB, anti-aliased (config.supersample^2 rays per pixel)
    out/geometry/000000.npz   depth float32 [H, W]: distance along the unit ray through the pixel
                              centre, world units, 0 where mask is False (render3d's depth);
                              normals float32 [H, W, 3]: world-space unit normals (0 off the mask);
                              mask bool [H, W]; object int16 [H, W]: id in ground_truth.json, -1 background
    out/meshes/00000.ply      each object's mesh in world coordinates (binary PLY with vertex
                              normals and colours); scenes also have their floor
    out/ground_truth.json     settings, and per object: scene, kind, mesh, parts, its box (center,
                              rotation, half_size; axis-aligned for the objects kind), and for scene
                              objects the placement

Kinds: "objects" (one procedural object per subject at the origin, inside [-0.45, 0.45]^3,
`views` images of each) and "scenes" (2 to 4 objects standing on a checkered floor,
top face at y = 0, `views` images of each scene). Images are rendered by open3d's ray
casting (`render3d.datasets.raycast`), independent of render3d's own renderers.
`SyntheticDataset` reads it back, ground truth included.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from render3d._checks import check_choice, check_positive
from render3d._files import npz_bytes, write_file
from render3d.cameras import Cameras, pose_prior_problem, sample_yaw_pitch
from render3d.datasets.eg3d import EG3DDataset, write_labels

KINDS = ("objects", "scenes")
GROUND_TRUTH_FILE = "ground_truth.json"
FORMAT = "render3d-synthetic"
# Coarser marching-cubes grids miss whole objects (below 6, some come out empty).
MIN_MESH_RESOLUTION = 8


@dataclass
class PoseDistribution:
    """Camera poses on a sphere around the origin looking at `pivot`, EG3D's yaw/pitch
    convention (radians; yaw pi/2 looks from +z, pitch pi/2 is level, smaller is higher):
    yaw = yaw_mean + yaw_spread * noise, likewise pitch, noise uniform in [-1, 1] or a standard
    Gaussian (`distribution`). `radius` world units, `fov_degrees` the vertical field of view."""

    yaw_mean: float = math.pi / 2
    yaw_spread: float = math.pi
    pitch_mean: float = math.pi / 2 - 0.3
    pitch_spread: float = 0.3
    distribution: str = "uniform"
    radius: float = 2.4
    fov_degrees: float = 32.0
    pivot: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        problem = pose_prior_problem(self)
        if problem is not None:
            name, expected, value = problem
            raise ValueError(f"PoseDistribution: argument '{name}' expected {expected}, got {value!r}")
        if len(self.pivot) != 3 or not all(math.isfinite(v) for v in self.pivot):
            raise ValueError(f"PoseDistribution: argument 'pivot' expected 3 finite coordinates, got {self.pivot!r}")

    def sample(self, n: int, resolution: int, generator: torch.Generator) -> Cameras:
        """n cameras (float64) rendering `resolution`^2 pixels."""
        return sample_yaw_pitch(n, yaw_mean=self.yaw_mean, yaw_spread=self.yaw_spread, pitch_mean=self.pitch_mean,
                                pitch_spread=self.pitch_spread, distribution=self.distribution, radius=self.radius,
                                width=resolution, height=resolution, pivot=self.pivot, fov_degrees=self.fov_degrees,
                                generator=generator, dtype=torch.float64)


# Each kind's default poses: objects seen from all around, slightly above; scenes from above
# the floor's edge, looking a little below the objects' middle.
DEFAULT_POSES = {
    "objects": PoseDistribution(),
    "scenes": PoseDistribution(pitch_mean=math.pi / 2 - 0.55, pitch_spread=0.2, radius=3.6, fov_degrees=40.0,
                               pivot=(0.0, 0.15, 0.0)),
}


@dataclass
class SynthConfig:
    """What `generate_synthetic` makes (defaults in parentheses).

    kind: "objects" or "scenes"; subjects: how many objects (or scenes); views: images of each;
    resolution: pixels per side, 32 to 256 (64); seed (0); supersample: odd rays per pixel side
    for anti-aliasing (3); mesh_resolution: marching-cubes grid per object, 8 or more (96);
    objects_per_scene: (min, max) for scenes ((2, 4)); floor_half: the floor's half-width (1.0);
    background: RGB in [0, 1] (white); poses: the camera distribution (DEFAULT_POSES[kind]).
    """

    kind: str = "objects"
    subjects: int = 16
    views: int = 8
    resolution: int = 64
    seed: int = 0
    supersample: int = 3
    mesh_resolution: int = 96
    objects_per_scene: tuple[int, int] = (2, 4)
    floor_half: float = 1.0
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    poses: PoseDistribution | None = None

    def __post_init__(self) -> None:
        fn = "SynthConfig"
        check_choice(fn, "kind", self.kind, KINDS)
        for name in ("subjects", "views"):
            check_positive(fn, name, getattr(self, name), integer=True)
        check_positive(fn, "seed", self.seed, allow_zero=True, integer=True)
        if self.mesh_resolution < MIN_MESH_RESOLUTION:
            raise ValueError(f"{fn}: argument 'mesh_resolution' expected {MIN_MESH_RESOLUTION} or more grid points "
                             f"per side, got {self.mesh_resolution!r}")
        if not 32 <= self.resolution <= 256:
            raise ValueError(f"{fn}: argument 'resolution' expected 32 to 256 pixels, got {self.resolution!r}")
        if self.supersample < 1 or self.supersample % 2 == 0:
            raise ValueError(f"{fn}: argument 'supersample' expected an odd positive int, got {self.supersample!r}")
        low, high = self.objects_per_scene
        if not 1 <= low <= high:
            raise ValueError(f"{fn}: argument 'objects_per_scene' expected (min, max) with 1 <= min <= max, "
                             f"got {self.objects_per_scene!r}")
        if self.poses is None:
            self.poses = DEFAULT_POSES[self.kind]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Subject:
    """One object or scene ready to render: its meshes, which of them is a floor, and the
    ground-truth entries of its meshes (without ids and files yet)."""

    meshes: list = field(default_factory=list)
    checker: tuple[int, ...] = ()
    entries: list[dict] = field(default_factory=list)


def _make_subject(config: SynthConfig, rng: np.random.Generator) -> _Subject:
    from render3d.datasets import procedural

    if config.kind == "objects":
        obj = procedural.random_object(rng)
        mesh = procedural.mesh_object(obj, config.mesh_resolution)
        lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
        box = {"center": ((lo + hi) / 2).tolist(), "rotation": np.eye(3).tolist(),
               "half_size": ((hi - lo) / 2).tolist()}
        return _Subject([mesh], (), [{"kind": "object", "parts": [p.to_dict() for p in obj.parts], "box": box}])
    count = int(rng.integers(config.objects_per_scene[0], config.objects_per_scene[1] + 1))
    objects = [procedural.random_object(rng) for _ in range(count)]
    canonical = [procedural.mesh_object(obj, config.mesh_resolution) for obj in objects]
    placements = procedural.place_objects(canonical, rng, floor_half=config.floor_half)
    subject = _Subject(checker=(count,))
    for obj, mesh, placement in zip(objects, canonical, placements):
        subject.meshes.append(mesh.transformed(placement.rotation, placement.scale, placement.translation))
        subject.entries.append({
            "kind": "object", "parts": [p.to_dict() for p in obj.parts], "box": placement.box_dict(),
            "placement": {"yaw": placement.yaw, "scale": placement.scale,
                          "translation": placement.translation.tolist()},
        })
    subject.meshes.append(procedural.floor_mesh(config.floor_half))
    subject.entries.append({"kind": "floor", "half_size": config.floor_half})
    return subject


SYNTH_MARKER = ".render3d-synth"  # written first: a folder with it (or ground_truth.json) is ours to overwrite
OUTPUTS = ("dataset.json", GROUND_TRUTH_FILE, "images", "geometry", "meshes", SYNTH_MARKER)
CONVENTIONS = {
    "world": "+Y up, world units; objects variant: each object inside [-0.45, 0.45]^3 at the origin",
    "depth": "distance along the unit ray through the pixel centre, from the camera centre; 0 off the mask",
    "normals": "world-space unit normals (vertex normals of the mesh, interpolated); 0 off the mask",
    "box": "world point = center + rotation @ local, local in [-half_size, half_size]",
    "placement": "world = R_y(yaw) @ (scale * canonical) + translation",
}
# open3d threads per cast in this process (0: open3d's choice); worker processes use 1.
_raycast_threads = 0


def _single_threaded() -> None:
    """Worker-process initializer: one thread for torch and open3d. Parallelism comes from the
    processes; threads inside them only spin against each other (measured on 2 busy cores: one
    process made 4 images/s with 2 threads per library, 25 images/s with 1)."""
    global _raycast_threads
    torch.set_num_threads(1)
    _raycast_threads = 1


def _render_subject(config: SynthConfig, index: int) -> tuple[_Subject, np.ndarray, dict[str, np.ndarray]]:
    """Subject `index`, built and rendered: (its meshes and entries, labels [views, 25], the
    arrays of `MeshRaycaster.render`). Depends only on (config.seed, index)."""
    from render3d.datasets.raycast import MeshRaycaster

    rng = np.random.default_rng([config.seed, index])
    subject = _make_subject(config, rng)
    generator = torch.Generator().manual_seed(int(rng.integers(1 << 62)))
    cameras = config.poses.sample(config.views, config.resolution, generator)
    rendered = MeshRaycaster(subject.meshes, subject.checker, threads=_raycast_threads).render(
        cameras, supersample=config.supersample, background=config.background)
    return subject, cameras.to_eg3d_label().numpy(), rendered


@dataclass
class _Manifest:
    """What has been written so far: image names and labels (for dataset.json), and the
    entries of ground_truth.json."""

    names: list[str] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)
    scenes: list[dict] = field(default_factory=list)

    def write_subject(self, out: Path, index: int, subject: _Subject, labels: np.ndarray,
                      rendered: dict[str, np.ndarray]) -> None:
        """Write subject `index`'s meshes, images and geometry files, and record them."""
        import imageio.v3 as iio

        ids = list(range(len(self.objects), len(self.objects) + len(subject.meshes)))
        for mesh_id, mesh, entry in zip(ids, subject.meshes, subject.entries):
            file = f"meshes/{mesh_id:05d}.ply"
            write_file(out / file, mesh.to_trimesh().export(file_type="ply"))
            self.objects.append({"id": mesh_id, "scene": index, **entry, "mesh": file})
        object_ids = np.array(ids, dtype=np.int16)
        first = len(self.names)
        for view in range(len(labels)):
            name, geometry = f"images/{len(self.names):06d}.png", f"geometry/{len(self.names):06d}.npz"
            write_file(out / name, iio.imwrite("<bytes>", np.round(rendered["rgb"][view] * 255).astype(np.uint8),
                                               extension=".png"))
            hit = rendered["mesh"][view]
            write_file(out / geometry, npz_bytes(depth=rendered["depth"][view], normals=rendered["normals"][view],
                                                 mask=rendered["mask"][view],
                                                 object=np.where(hit >= 0, object_ids[hit], -1)))
            self.names.append(name)
            self.images.append({"file": name, "geometry": geometry, "scene": index})
        self.labels.append(labels)
        self.scenes.append({"index": index, "objects": ids, "images": list(range(first, len(self.names)))})


def generate_synthetic(out: str | Path, config: SynthConfig, *, progress: bool = True, overwrite: bool = False,
                       workers: int = 1) -> dict:
    """Write the dataset described in the module docstring to `out` (created). A folder that
    already holds one of its outputs raises, unless `overwrite`: then those outputs (and only
    they) are deleted first, so that no stale image outlives a smaller run.
    workers: subjects are built and rendered in this many single-threaded processes (1: in
    this process); the files are the same for any count. Returns {"images", "objects", "seconds"}.
    """
    import shutil
    import time
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial
    from multiprocessing import get_context

    import open3d
    from tqdm import tqdm

    import render3d

    started = time.perf_counter()
    check_positive("generate_synthetic", "workers", workers, integer=True)
    out = Path(out)
    existing = [name for name in OUTPUTS if (out / name).exists()]
    if existing and not overwrite:
        raise ValueError(f"generate_synthetic: argument 'out' expected a folder without a dataset, got {out} holding "
                         f"{', '.join(existing)} (pass overwrite=True, or --overwrite, to replace it)")
    ours = (out / GROUND_TRUTH_FILE).is_file() or (out / SYNTH_MARKER).is_file()
    if existing and not ours:                           # say someone's own EG3D dataset: never delete its images
        raise ValueError(f"generate_synthetic: argument 'out' expected a folder without a dataset or with a synthetic "
                         f"one to overwrite, got {out} holding {', '.join(existing)} but no {GROUND_TRUTH_FILE}: a "
                         f"dataset render3d did not write, which overwrite does not delete; choose another folder")
    for name in existing:
        if (out / name).is_dir():
            shutil.rmtree(out / name)
        else:
            (out / name).unlink()
    for folder in ("images", "geometry", "meshes"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    write_file(out / SYNTH_MARKER, b"written by render3d dataset synth: --overwrite may replace this folder's "
                                   b"dataset\n")
    manifest = _Manifest()
    bar = tqdm(total=config.subjects * config.views, desc=f"synth {config.kind}", unit="img", disable=not progress)
    render = partial(_render_subject, config)
    pool = (ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_single_threaded)
            if workers > 1 else None)
    try:
        subjects = pool.map(render, range(config.subjects)) if pool else map(render, range(config.subjects))
        for index, (subject, labels, rendered) in enumerate(subjects):
            manifest.write_subject(out, index, subject, labels, rendered)
            bar.update(config.views)
    finally:
        bar.close()                                     # before an error's line
        if pool:                                        # after a failure (a full disk), only the subjects begun
            pool.shutdown(cancel_futures=True)
    write_labels(out, manifest.names, np.concatenate(manifest.labels))
    truth = {
        "format": FORMAT, "version": 1,
        "settings": {**config.to_dict(), "render3d": render3d.__version__, "open3d": open3d.__version__},
        "conventions": CONVENTIONS, "scenes": manifest.scenes, "objects": manifest.objects, "images": manifest.images,
    }
    write_file(out / GROUND_TRUTH_FILE, json.dumps(truth, indent=1).encode())
    return {"images": len(manifest.names), "objects": len(manifest.objects), "seconds": time.perf_counter() - started}


class SyntheticDataset(EG3DDataset):
    """A dataset written by `generate_synthetic`, read as an `EG3DDataset` plus its ground truth.

    with_geometry: items also hold ``depth`` float32 [1, H, W], ``normals`` [3, H, W], ``mask``
    bool [1, H, W] and ``object`` int64 [1, H, W] (see the module docstring); mirrored items
    (xflip) carry the geometry of the mirrored world (flipped maps, normals' x negated).
    `ground_truth` is the parsed ground_truth.json; `mesh(id)` loads one object's mesh.
    """

    def __init__(self, path: str | Path, *, xflip: bool = False, resolution: int | None = None,
                 with_geometry: bool = True) -> None:
        super().__init__(path, xflip=xflip, resolution=resolution)
        if GROUND_TRUTH_FILE not in self.storage:
            raise ValueError(f"SyntheticDataset: argument 'path' expected a dataset written by `render3d dataset "
                             f"synth` (with {GROUND_TRUTH_FILE}), got none in {path}")
        self.ground_truth = json.loads(self.storage.read(GROUND_TRUTH_FILE))
        self.with_geometry = with_geometry
        self._geometry = {entry["file"]: entry["geometry"] for entry in self.ground_truth["images"]}

    def geometry(self, index: int) -> dict[str, torch.Tensor]:
        """Ground truth of entry `index` (unmirrored): depth, normals, mask, object."""
        import io

        with np.load(io.BytesIO(self.storage.read(self._geometry[self.names[index]]))) as data:
            return {
                "depth": torch.from_numpy(data["depth"])[None],
                "normals": torch.from_numpy(data["normals"]).permute(2, 0, 1),
                "mask": torch.from_numpy(data["mask"])[None],
                "object": torch.from_numpy(data["object"].astype(np.int64))[None],
            }

    def __getitem__(self, item: int) -> dict:
        out = super().__getitem__(item)
        if self.with_geometry:
            geometry = self.geometry(out["index"])
            if out["xflip"]:
                geometry = {k: v.flip(-1) for k, v in geometry.items()}
                geometry["normals"] = geometry["normals"] * torch.tensor([-1.0, 1.0, 1.0])[:, None, None]
            out.update(geometry)
        return out

    def mesh(self, object_id: int):
        """Object `object_id`'s mesh as a `trimesh.Trimesh` (world coordinates)."""
        import io

        import trimesh

        entry = self.ground_truth["objects"][object_id]
        return trimesh.load(io.BytesIO(self.storage.read(entry["mesh"])), file_type="ply", process=False)

    def object_ids(self, kind: str = "object") -> list[int]:
        """Ids of the meshes of `kind` ("object" or "floor")."""
        return [entry["id"] for entry in self.ground_truth["objects"] if entry["kind"] == kind]
