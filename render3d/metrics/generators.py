"""Metrics of a trained generator against a posed dataset: its subjects' shapes (meshes from
`G.density`, sampled on their surface) scored by COV / MMD / 1-NNA against the dataset's
ground-truth meshes, and its images (rendered from the dataset's cameras) by FID / KID.
`render3d eval generator` and the metrics of a training run (config.metrics) both use them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from render3d.cameras import Cameras
from render3d.generators.sampling import extract_generator_mesh, styles_from_seeds
from render3d.mesh import NoSurfaceError

from .images import extract_features, fid, kid
from .shapes import compare_shape_sets, normalize_points, sample_surface


def dataset_meshes(path: str | Path) -> list[Path]:
    """The object meshes of a synthetic dataset folder (`render3d dataset synth`, from its
    ground_truth.json) in the order it lists them; [] for a folder or file that is not one."""
    from render3d.datasets.synth import GROUND_TRUTH_FILE

    path = Path(path)
    if not (path / GROUND_TRUTH_FILE).is_file():
        return []
    truth = json.loads((path / GROUND_TRUTH_FILE).read_text())
    return [path / entry["mesh"] for entry in truth["objects"] if entry["kind"] == "object"]


def generator_shapes(G, seeds: Sequence[int], *, view: dict | None = None, resolution: int = 64, points: int = 2048,
                     truncation: float = 1.0, normalize: str = "none", empty: str = "raise",
                     progress: bool = False, on_shape: Callable[[], object] | None = None
                     ) -> list[np.ndarray | None]:
    """Point sets ``[points, 3]`` (world units) on the surfaces of the subjects of `seeds`:
    marching cubes on G.density over the generator's box at `resolution` per side, Otsu's
    level, the largest components kept (`render3d.mesh.extract_mesh`). `view` (the
    generator's metadata "view") is needed by camera-conditioned generators only.

    A subject without a surface at Otsu's level (a collapsed or barely trained generator's)
    raises `NoSurfaceError` naming its seed with `empty` "raise"; with "none" it is None in the
    list (`compare_shape_sets` scores such lists), unless no subject has a surface: that
    raises, naming the first seed. `progress`: a bar of its own; `on_shape`: called after each
    subject instead (a caller's bar)."""
    from tqdm import tqdm

    if empty not in ("raise", "none"):
        raise ValueError(f"generator_shapes: argument 'empty' expected 'raise' or 'none', got {empty!r}")
    expected = "generator_shapes: argument 'seeds' expected subjects that have a surface, got"
    sets, first = [], None
    for seed in tqdm(seeds, desc="generator shapes", unit="shape", disable=not progress):
        ws = styles_from_seeds(G, [seed], view, truncation=truncation)
        try:
            mesh = extract_generator_mesh(G, ws, resolution=resolution, color=None,
                                          clean={"smooth_iterations": 0})
        except NoSurfaceError as error:
            if empty == "raise":
                raise NoSurfaceError(f"{expected} seed {seed}, whose density {error.field_said()} inside the "
                                     f"generator's box", error.low, error.high, error.level, error.auto) from error
            first = first or (seed, error)
            sets.append(None)
        else:
            sets.append(normalize_points(sample_surface(mesh, points, seed), normalize))
        if on_shape is not None:
            on_shape()
    if sets and all(points is None for points in sets):
        seed, error = first
        raise NoSurfaceError(f"{expected} none of {len(sets)} (seed {seed}'s density {error.field_said()} inside the "
                             f"generator's box)", error.low, error.high, error.level, error.auto) from error
    return sets


def generator_images(G, labels: torch.Tensor, *, seeds: Sequence[int], batch: int = 16,
                     truncation: float = 1.0) -> Iterator[torch.Tensor]:
    """Images ``[B, 3, H, W]`` in [0, 1] of the subjects of `seeds`, subject i seen from camera
    label ``labels[i]`` ([N, 25], N >= len(seeds)), `batch` at a time (a camera-conditioned
    generator is conditioned on the same label)."""
    device = next(G.parameters()).device
    size = G.resolutions[-1]
    for start in range(0, len(seeds), batch):
        chunk = list(seeds[start:start + batch])
        cameras = Cameras.from_eg3d_label(labels[start:start + len(chunk)].to(device), size, size)
        with torch.no_grad():
            ws = styles_from_seeds(G, chunk, labels=labels[start:start + len(chunk)], truncation=truncation)
            image = G.synthesis(ws, cameras, noise_mode="const")["image"]
        yield ((image + 1) / 2).clamp(0, 1).cpu()


def shape_metrics(G, seeds: Sequence[int], reference: Sequence[np.ndarray], *, view: dict | None = None,
                  resolution: int = 64, points: int = 2048, normalize: str = "none",
                  progress: bool = False) -> dict[str, float]:
    """`scored_shapes` of the subjects of `seeds` (`generator_shapes` raises when none has a
    surface)."""
    generated = generator_shapes(G, seeds, view=view, resolution=resolution, points=points, normalize=normalize,
                                 empty="none", progress=progress)
    return scored_shapes(generated, reference)


def scored_shapes(generated: Sequence[np.ndarray | None], reference: Sequence[np.ndarray], *,
                  reference_distances: np.ndarray | None = None, progress: bool = False) -> dict[str, float]:
    """COV, MMD and 1-NNA of `generator_shapes(..., empty="none")`'s point sets against
    `reference` ones, and "empty": the fraction of subjects without a surface (how they count,
    `reference_distances` and `progress`: `compare_shape_sets`)."""
    empty = sum(points is None for points in generated) / max(len(generated), 1)
    scores = compare_shape_sets(generated, reference, reference_distances=reference_distances, progress=progress)
    return {**scores, "empty": empty}


def dataset_image_features(dataset, network, count: int, size: int) -> tuple[np.ndarray, str]:
    """Features ``[n, D]`` by `network` of the first n = min(count, len(dataset.labels)) image
    files of `dataset` (an EG3D dataset, in sorted order, as its labels), and how they were
    treated: at `size` px (the generator's), box-filtered down to it when larger and square
    (what D sees in training), else as they are, so that a score does not depend on the
    dataset's resolution."""
    from render3d.training.data import resize_reals

    from .images import ImageFolder

    folder = ImageFolder(dataset.storage.path, min(count, len(dataset.labels)))
    width, height = folder.size
    batches = folder.batches(32)
    if width > size and width == height:
        batches = (resize_reals(batch, size) for batch in batches)
        said = f"{width} px, box-filtered to the generator's {size} px"
    else:
        resized = "" if width == height == size else f" (the generator makes {size} px)"
        said = f"{width} x {height} px as they are{resized}"
    return extract_features(batches, network), said


def generator_features(G, labels: torch.Tensor, network, seeds: Sequence[int], *,
                       on_batch: Callable[[int], object] | None = None) -> np.ndarray | None:
    """Features ``[len(seeds), D]`` by `network` of G's images of the subjects of `seeds`,
    subject i seen from camera label ``labels[i]`` (`generator_images`); None for no seeds.
    `on_batch` is called with the size of each batch of images made (a progress bar's update)."""
    if not len(seeds):
        return None

    def counted():
        for batch in generator_images(G, labels, seeds=seeds):
            if on_batch is not None:
                on_batch(len(batch))
            yield batch

    return extract_features(counted(), network)


def image_scores(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """FID and KID ("images/fid", "images/kid") of `fake` features against `real` ones."""
    kid_mean, _ = kid(real, fake, subset_size=min(1000, len(real)))
    return {"images/fid": fid(real, fake), "images/kid": kid_mean}


def image_metrics(G, labels: torch.Tensor, network, real: np.ndarray) -> dict[str, float]:
    """FID and KID ("images/fid", "images/kid") of G's images against `real` features
    ``[n, D]`` (`dataset_image_features`): the subjects of seeds 0..n-1, subject i seen from
    camera label ``labels[i]`` (the dataset's, in order), through the same `network`."""
    return image_scores(real, generator_features(G, labels, network, range(len(real))))
