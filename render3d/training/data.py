"""Data order and camera poses for training, both reproducible from a seed and a position.

`GlobalBatchSampler` fixes the order of real images over all processes: the stream is the
concatenation of per-epoch permutations (epoch e shuffled by seed + e); global batch k is
stream[k B : (k + 1) B] and process r of W reads its r-th slice. So the data a run sees
depends only on (seed, global batch B, step), not on the number of processes, and a resumed
run continues at step k exactly.
"""

from __future__ import annotations

import torch

from render3d._checks import said_choices
from render3d.cameras import Cameras, DatasetPoseSampler, sample_yaw_pitch

from .config import PoseConfig


class GlobalBatchSampler(torch.utils.data.Sampler):
    """Infinite dataset indices for process `rank` of `world`, from global batch `start_step` on."""

    def __init__(self, size: int, batch: int, *, seed: int, rank: int = 0, world: int = 1, start_step: int = 0):
        if batch % world:
            raise ValueError(f"GlobalBatchSampler: argument 'batch' expected a multiple of the {world} processes, "
                             f"got {batch}")
        self.size, self.batch, self.seed = size, batch, seed
        self.rank, self.local = rank, batch // world
        self.start_step = start_step
        self._epoch, self._order = -1, None

    def _stream(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.size, generator=generator)
        return int(self._order[offset])

    def __iter__(self):
        step = self.start_step
        while True:
            first = step * self.batch + self.rank * self.local
            for position in range(first, first + self.local):
                yield self._stream(position)
            step += 1


class PoseSampler:
    """Generator cameras: the dataset's labels (mirrored ones too with x-flip) or a yaw/pitch
    prior. `sample(n, generator)` -> (Cameras, labels [n, 25]); the cameras' image size is
    a placeholder (generators render at their own resolutions)."""

    def __init__(self, config: PoseConfig, dataset=None) -> None:
        self.config = config
        self.replay = None
        if config.source == "dataset":
            labels = dataset.labels
            if dataset.xflip:
                mirrored = dataset.cameras(labels).mirrored().to_eg3d_label().to(labels.dtype)
                labels = torch.cat([labels, mirrored])
            self.replay = DatasetPoseSampler(labels, dataset.width, dataset.height)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Cameras, torch.Tensor]:
        if self.replay is not None:
            cameras = self.replay.sample(n, generator)
        else:
            c = self.config
            cameras = sample_yaw_pitch(n, yaw_mean=c.yaw_mean, yaw_spread=c.yaw_spread, pitch_mean=c.pitch_mean,
                                       pitch_spread=c.pitch_spread, distribution=c.distribution, radius=c.radius,
                                       width=1, height=1, pivot=c.pivot, fov_degrees=c.fov_degrees,
                                       generator=generator)
        return cameras, cameras.to_eg3d_label()

    def view_defaults(self) -> dict:
        """Where grids and orbit videos look from: the mean radius, vertical FOV and pitch of
        the training cameras, and the look-at pivot."""
        c = self.config
        if self.replay is None:
            return {"radius": c.radius, "fov_degrees": c.fov_degrees, "pitch": c.pitch_mean, "pivot": list(c.pivot)}
        cameras = self.replay.cameras
        _, pitch, radius = cameras.to_yaw_pitch()
        return {"radius": float(radius.mean()), "fov_degrees": float(cameras.fov_y.mean()),
                "pitch": float(pitch.mean()), "pivot": [0.0, 0.0, 0.0]}


def gpc_swap_probability(nimg: int, swap: float, fade_kimg: float) -> float:
    """EG3D's generator pose conditioning schedule: after `nimg` images, the probability that a
    generated sample is conditioned on another sample's camera. 1 at the start, falling linearly
    to `swap` at fade_kimg thousand images (fade_kimg 0: `swap` throughout)."""
    if fade_kimg <= 0:
        return swap
    alpha = min(nimg / (fade_kimg * 1000), 1.0)
    return 1.0 - alpha * (1.0 - swap)


def conditioning_labels(labels: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """The camera labels ``[B, 25]`` a camera-conditioned generator's mapping network sees: each
    row, with `probability` (drawn from `generator`), replaced by the previous row's (the batch
    rolled by one, as EG3D swaps), so that G cannot tie a subject's identity to the camera it is
    rendered from. The renderer and D still get the true cameras."""
    swap = torch.rand(labels.shape[0], 1, generator=generator) < probability
    return torch.where(swap, labels.roll(1, 0), labels)


def progressive_stage(nimg: int, resolutions: list[int], start: int, stage_kimg: float,
                      fade_kimg: float) -> tuple[int, float]:
    """(resolution, blend) after `nimg` images: `start` for stage_kimg, then per doubling a
    fade (blend rising 0 -> 1 over fade_kimg) and a stable stage. start 0: the last resolution."""
    final = resolutions[-1]
    if start == 0 or start >= final:
        return final, 1.0
    if start not in resolutions:
        raise ValueError(f"progressive.start_resolution: expected 0 or one of {said_choices(resolutions)}, got {start}")
    kimg = nimg / 1000
    resolution, span = start, stage_kimg
    while resolution < final:
        if kimg < span:
            return resolution, 1.0
        kimg -= span
        resolution *= 2
        if kimg < fade_kimg:
            return resolution, kimg / fade_kimg
        kimg -= fade_kimg
        span = stage_kimg
    return final, 1.0


def progressive_said(resolutions: list[int], start: int, stage_kimg: float, fade_kimg: float) -> str | None:
    """`progressive_stage`'s schedule in words, for the header of a run; None without growing."""
    final = resolutions[-1]
    if start == 0 or start >= final:
        return None
    steps, kimg, resolution = [], stage_kimg, start
    while resolution < final:
        resolution *= 2
        steps.append(f"{resolution} px from {kimg:g}")
        kimg += fade_kimg + stage_kimg
    return (f"progressive growing: {start} px, then {', '.join(steps)} kimg (each fading in over {fade_kimg:g} "
            f"kimg); grown at {kimg - stage_kimg:g} kimg")


def resize_reals(images: torch.Tensor, resolution: int, blend: float = 1.0) -> torch.Tensor:
    """Real images ``[B, 3, R, R]`` as D sees them at `resolution` (box-filtered down), faded like
    the generator while a block fades in: lerp(2x-coarser image up-sampled, image, blend)."""
    if images.shape[-1] != resolution:
        images = torch.nn.functional.adaptive_avg_pool2d(images, resolution)
    if blend < 1:
        coarse = torch.nn.functional.avg_pool2d(images, 2)
        images = torch.nn.functional.interpolate(coarse, scale_factor=2, mode="nearest").lerp(images, blend)
    return images
