"""Metrics of the EMA generator while it trains (config.metrics): what `render3d eval generator`
computes for a checkpoint, every `metrics.every` steps, so that a run shows whether its shapes
and images get better without evaluating its checkpoints one by one afterwards.

Shapes are scored against the meshes of a synthetic dataset (`render3d dataset synth`), images
by FID / KID when the Inception file is there; a run asks for at least one of them. Under
torchrun every process meshes and renders a share of the subjects (seeds rank, rank + world,
...) and process 0 scores them all, so that the scores do not depend on the number of
processes. Nothing here draws from the global random generators, so a run trains the same
weights with metrics on or off.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .checks import SetupError
from .config import MetricsConfig
from .distributed import Distributed


class RunMetrics:
    """What a run's config.metrics can measure on its dataset, refused before the first step
    when that is nothing, or a reference mesh or the Inception file cannot be read; `measure`
    scores a generator. Every process of `dist` loads the Inception network onto `device`,
    and process 0 reads the reference meshes (and measures their distances to each other),
    once, here, so that a damaged file is said before the first step rather than at the first
    measurement of a resumed run, hours in."""

    def __init__(self, config: MetricsConfig, data_path: str, dataset, dist: Distributed | None = None,
                 device="cpu") -> None:
        from render3d.metrics import InceptionFeatures, chamfer_matrix, default_inception_path, load_points
        from render3d.metrics.generators import dataset_meshes

        self.config, self.dataset, self.dist = config, dataset, dist or Distributed()
        self.meshes = dataset_meshes(data_path)[:config.max_reference] if config.shapes else []
        self.inception = None
        if config.images:
            path = Path(config.inception) if config.inception else default_inception_path()
            if config.inception and not path.is_file():   # asked for by name: a typo is not "no FID"
                raise SetupError(f"train: metrics.inception expected the TorchScript Inception file "
                                 f"inception-2015-12-05.pt, got no file at {path}")
            self.inception = path if path.is_file() else None
        self.images = min(config.images, len(dataset.labels)) if self.inception is not None else 0
        if not self.meshes and self.inception is None:
            shapes = ("metrics.shapes=0" if not config.shapes else
                      f"data.path {data_path} is not a synthetic dataset with meshes (`render3d dataset synth`)")
            images = ("metrics.images=0" if not config.images else
                      f"no Inception file at {default_inception_path()} (metrics.inception=FILE or "
                      f"$RENDER3D_INCEPTION names one)")
            raise SetupError(f"train: metrics.every={config.every} expected something to measure, got nothing: "
                             f"{shapes}, and {images}")
        # What ranks the best generator (RunLog.keep_best): metrics.best, else FID, else shape MMD.
        self.best = config.best or ("images/fid" if self.inception is not None else "shapes/mmd")
        if self.best.startswith("images/") and self.inception is None:
            raise SetupError(f"train: metrics.best={self.best} expected FID/KID to be measured, got no Inception "
                             f"file at {default_inception_path()} (metrics.inception=FILE or $RENDER3D_INCEPTION "
                             f"names one)")
        if self.best.startswith("shapes/") and not self.meshes:
            raise SetupError(f"train: metrics.best={self.best} expected shapes to be measured, got none: data.path "
                             f"{data_path} is not a synthetic dataset with meshes (`render3d dataset synth`)")
        self.step = None                # the step measured last
        self._reference = self._reference_distances = self._network = self._real = None
        try:                                            # the errors name the file and what is wrong with it
            if self.meshes and self.dist.main:
                self._reference = [load_points(f, config.points, seed=0) for f in self.meshes]
                self._reference_distances = chamfer_matrix(self._reference)
            if self.inception is not None:
                self._network = InceptionFeatures(self.inception, device=device)
        except ValueError as error:
            raise SetupError(f"train: metrics: {error}") from None

    def said(self) -> str:
        """What is measured, for the header of a run."""
        parts = []
        if self.meshes:
            parts.append(f"COV/MMD/1-NNA of {self.config.shapes} shapes against {len(self.meshes)} meshes")
        if self.inception is not None:
            parts.append(f"FID/KID of {self.images} images")
        else:
            parts.append("FID/KID skipped (no Inception file; metrics.inception=FILE)" if self.config.images else
                         "no FID/KID (metrics.images=0)")
        return (f"train: metrics every {self.config.every} steps into metrics.jsonl: {', '.join(parts)}; the "
                f"generator of the best {self.best} goes to best/")

    def measure(self, G, view: dict, step: int, *, progress: bool = False) -> tuple[dict[str, float], float]:
        """(metrics, seconds taken) of generator `G` (the EMA one, in eval mode) at `step`: in
        process 0, the keys of `render3d eval generator`'s results; {} in the others. A
        generator none of whose subjects has a surface yet scores "shapes/empty" 1 alone.
        `progress`: a bar over this process's subjects, gone when done. Every process must
        call it."""
        from tqdm import tqdm

        from render3d.mesh import NoSurfaceError
        from render3d.metrics.generators import (dataset_image_features, generator_features, generator_shapes,
                                                 image_scores, scored_shapes)

        started = time.perf_counter()
        config, dist, metrics = self.config, self.dist, {}
        shape_seeds, image_seeds = dist.share(config.shapes if self.meshes else 0), dist.share(self.images)
        with tqdm(total=len(shape_seeds) + len(image_seeds), desc=f"metrics at step {step}", unit="subject",
                  leave=False, disable=not progress) as bar:
            if self.meshes:
                try:
                    mine = generator_shapes(G, shape_seeds, view=view, resolution=config.mesh_resolution,
                                            points=config.points, empty="none", on_shape=bar.update)
                except NoSurfaceError:                  # none of this process's subjects has a surface
                    mine = [None] * len(shape_seeds)
                generated = dist.gather_shares(mine, config.shapes)
                if generated is not None and all(points is None for points in generated):
                    metrics["shapes/empty"] = 1.0
                elif generated is not None:
                    scored = scored_shapes(generated, self._reference, reference_distances=self._reference_distances)
                    metrics.update({f"shapes/{k}": v for k, v in scored.items()})
            if self.inception is not None:
                mine = generator_features(G, self.dataset.labels[image_seeds], self._network, image_seeds,
                                          on_batch=bar.update)
                fake = dist.gather_shares(mine if mine is not None else [], self.images)
                if fake is not None:
                    if self._real is None:              # the reals' features: once per run
                        self._real, _ = dataset_image_features(self.dataset, self._network, self.images,
                                                               G.resolutions[-1])
                    metrics.update(image_scores(self._real, np.stack(fake)))
        self.step = step
        return metrics, time.perf_counter() - started
