"""A multi-level occupancy grid for empty-space skipping, and marching through it.

Level l covers ``center +- half * 2^l`` with ``resolution^3`` cells (instant-ngp's
cascades, nerfacc's ``levels``); a point is looked up in the finest level containing it.
Each cell keeps an occupancy value (an exponential moving maximum of the density there,
times the marching step: roughly the opacity of one step through it) and one bit: occupied
or not. Marching (native op, `render3d.ops.march`) emits the lattice steps whose midpoints
fall in occupied cells; `OccupancyGrid.sample` then drops samples behind an opaque surface
(transmittance below `early_stop_eps`), as nerfacc does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .._checks import Sizes, check_box, check_finite, check_positive, check_tensor
from ..constants import OCC_EMA_DECAY, OCC_THRESHOLD, TRANSMITTANCE_EPS
from ..ops.march import occupancy_march_op

DensityFn = Callable[[torch.Tensor], torch.Tensor]  # points [N, 3] -> densities [N]


@dataclass
class PackedSamples:
    """Samples of many rays, flat and grouped by ray (sorted by t within each ray)."""

    ray_ids: torch.Tensor   # [N] int64, non-decreasing
    t_starts: torch.Tensor  # [N]
    t_ends: torch.Tensor    # [N]
    offsets: torch.Tensor   # [R + 1] int64 CSR offsets: ray r owns offsets[r]:offsets[r+1]

    @property
    def n_rays(self) -> int:
        return self.offsets.numel() - 1

    def __len__(self) -> int:
        return self.ray_ids.numel()

    def midpoints(self) -> torch.Tensor:
        return 0.5 * (self.t_starts + self.t_ends)

    def select(self, keep: torch.Tensor) -> PackedSamples:
        """The samples where ``keep [N]`` is True, with offsets recomputed."""
        ray_ids = self.ray_ids[keep]
        counts = torch.bincount(ray_ids, minlength=self.n_rays)
        return PackedSamples(ray_ids, self.t_starts[keep], self.t_ends[keep], F.pad(torch.cumsum(counts, 0), (1, 0)))


def pack_bits(occupied: torch.Tensor) -> torch.Tensor:
    """``[L, res^3]`` bool -> ``[L, res^3 / 8]`` uint8, cell i in bit i % 8 of byte i // 8."""
    levels = occupied.shape[0]
    weights = (1 << torch.arange(8, device=occupied.device)).to(torch.uint8)
    return (occupied.reshape(levels, -1, 8).to(torch.uint8) * weights).sum(-1, dtype=torch.uint8)


class OccupancyGrid(torch.nn.Module):
    """Occupancy grid over an axis-aligned region of interest.

    Args:
        aabb: ``(min_xyz, max_xyz)`` of the level-0 box.
        resolution: cells per axis at every level (a multiple of 4).
        levels: number of nested levels; level l covers the box scaled by 2^l about its centre.

    All cells start occupied, so marching before the first update samples everything.
    """

    def __init__(self, aabb, resolution: int = 128, levels: int = 1):
        super().__init__()
        fn = "render3d.rays.OccupancyGrid"
        lo, hi = check_box(fn, "aabb", aabb)
        check_positive(fn, "resolution", resolution, integer=True)
        if resolution % 4:
            raise ValueError(f"{fn}: argument 'resolution' expected a positive multiple of 4, got {resolution}")
        check_positive(fn, "levels", levels, integer=True)
        if not 1 <= levels <= 16:
            raise ValueError(f"{fn}: argument 'levels' expected 1 to 16, got {levels}")
        resolution, levels = int(resolution), int(levels)
        self.center = ((lo + hi) / 2).tolist()
        self.half = ((hi - lo) / 2).tolist()
        self.resolution = resolution
        self.levels = levels
        cells = resolution**3
        self.register_buffer("occupancy", torch.zeros(levels, cells))
        self.register_buffer("bitfield", torch.full((levels, cells // 8), 255, dtype=torch.uint8))

    # --- cells -----------------------------------------------------------------------------

    def cell_centers(self, level: int, indices: torch.Tensor, jitter: torch.Tensor | None = None) -> torch.Tensor:
        """World positions of cells ``indices [N]`` (flat, as in the bitfield) of one level,
        optionally offset by ``jitter [N, 3]`` in cell units (in [-0.5, 0.5))."""
        res = self.resolution
        ijk = torch.stack([indices // (res * res), (indices // res) % res, indices % res], dim=-1).to(torch.float32)
        if jitter is not None:
            ijk = ijk + jitter
        unit = (ijk + 0.5) / res * 2 - 1  # [-1, 1] within the level's box
        scale = float(1 << level)
        center = torch.tensor(self.center, device=indices.device)
        half = torch.tensor(self.half, device=indices.device)
        return center + unit * half * scale

    def occupied_fraction(self) -> float:
        bits = torch.stack([(self.bitfield >> b) & 1 for b in range(8)], dim=-1)
        return float(bits.float().mean())

    # --- updates ---------------------------------------------------------------------------

    @torch.no_grad()
    def update(
        self,
        density_fn: DensityFn,
        *,
        step_size: float,
        step: int | None = None,
        decay: float = OCC_EMA_DECAY,
        threshold: float = OCC_THRESHOLD,
        warmup_steps: int = 256,
        generator: torch.Generator | None = None,
        chunk: int = 1 << 18,
    ) -> None:
        """One training-time update: re-evaluate cells at jittered positions and refresh bits.

        During the first `warmup_steps` updates (by `step`), every cell; afterwards a random
        quarter of all cells plus up to as many occupied ones (nerfacc / instant-ngp). A cell's
        occupancy becomes ``max(decay * old, density * step_size)``; it is occupied while that
        exceeds ``min(mean occupancy, threshold)``.
        """
        fn = "render3d.rays.OccupancyGrid.update"
        check_positive(fn, "step_size", step_size)
        cells = self.resolution**3
        device = self.occupancy.device
        for level in range(self.levels):
            if step is None or step < warmup_steps:
                indices = torch.arange(cells, device=device)
            else:
                uniform = torch.randint(cells, (cells // 4,), generator=generator, device="cpu").to(device)
                occupied = (self.occupancy[level] > threshold).nonzero()[:, 0]
                if occupied.numel() > cells // 4:
                    pick = torch.randint(occupied.numel(), (cells // 4,), generator=generator, device="cpu").to(device)
                    occupied = occupied[pick]
                indices = torch.cat([uniform, occupied])
            jitter = torch.rand(indices.shape[0], 3, generator=generator, device="cpu").to(device) - 0.5
            values = self._evaluate(fn, density_fn, level, indices, jitter, chunk) * step_size
            old = self.occupancy[level]
            old[indices] = torch.maximum(old[indices] * decay, values)
        self._refresh_bits(threshold)

    @torch.no_grad()
    def build(
        self,
        density_fn: DensityFn,
        *,
        step_size: float,
        threshold: float = OCC_THRESHOLD,
        samples_per_cell: int = 4,
        generator: torch.Generator | None = None,
        chunk: int = 1 << 18,
    ) -> None:
        """Fill the grid from scratch for a fixed field (inference, analytic scenes): each
        cell's occupancy is the largest of `samples_per_cell` jittered density samples times
        `step_size`; a cell is occupied above ``threshold`` (no mean-based relaxation)."""
        fn = "render3d.rays.OccupancyGrid.build"
        check_positive(fn, "step_size", step_size)
        check_positive(fn, "samples_per_cell", samples_per_cell, integer=True)
        cells = self.resolution**3
        device = self.occupancy.device
        indices = torch.arange(cells, device=device)
        for level in range(self.levels):
            best = torch.zeros(cells, device=device)
            for _ in range(samples_per_cell):
                jitter = torch.rand(cells, 3, generator=generator, device="cpu").to(device) - 0.5
                best = torch.maximum(best, self._evaluate(fn, density_fn, level, indices, jitter, chunk))
            self.occupancy[level] = best * step_size
        self.bitfield.copy_(pack_bits(self.occupancy > threshold))

    def _evaluate(self, fn, density_fn, level, indices, jitter, chunk) -> torch.Tensor:
        out = []
        for start in range(0, indices.numel(), chunk):
            points = self.cell_centers(level, indices[start:start + chunk], jitter[start:start + chunk])
            densities = density_fn(points).reshape(-1).float()
            out.append(densities)
        densities = torch.cat(out) if out else torch.zeros(0, device=indices.device)
        check_finite(fn, "density_fn(points)", densities, nonnegative=True)
        return densities

    def _refresh_bits(self, threshold: float) -> None:
        level_threshold = torch.clamp(self.occupancy.mean(), max=threshold)
        self.bitfield.copy_(pack_bits(self.occupancy > level_threshold))

    # --- marching --------------------------------------------------------------------------

    def march(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: torch.Tensor | float,
        far: torch.Tensor | float,
        *,
        step_size: float,
        cone_angle: float = 0.0,
        max_step: float = 1e10,
        max_samples: int = 0,
        impl: str = "auto",
    ) -> PackedSamples:
        """March rays ``origins, directions [R, 3]`` from ``near`` to ``far`` (floats or ``[R]``).

        Steps are `step_size` long, or with `cone_angle` > 0 grow as ``t * cone_angle`` up to
        `max_step`; `max_samples` > 0 caps the samples of each ray. See `render3d.ops.march`
        for the exact sample set.
        """
        fn = "render3d.rays.OccupancyGrid.march"
        sizes = Sizes()
        check_tensor(fn, "origins", origins, ("R", 3), sizes=sizes)
        check_tensor(fn, "directions", directions, ("R", 3), sizes=sizes, like=origins, like_name="origins")
        check_finite(fn, "origins", origins)
        check_finite(fn, "directions", directions)
        if origins.shape[0] and not bool((directions.abs().amax(-1) > 0).all()):
            raise ValueError(f"{fn}: argument 'directions' expected non-zero vectors, got a zero direction")
        n = sizes["R"]
        near = _per_ray(fn, "near", near, n, origins)
        far = _per_ray(fn, "far", far, n, origins)
        check_finite(fn, "near", near)
        if bool((torch.isnan(far) | (far == -math.inf)).any()):     # +inf: march to where the grid ends
            raise ValueError(f"{fn}: argument 'far' expected finite values or +inf, got {far.min().item()}")
        check_positive(fn, "step_size", step_size)
        check_positive(fn, "cone_angle", cone_angle, allow_zero=True)
        check_positive(fn, "max_step", max_step, finite=False)
        if self.bitfield.device != origins.device:
            raise ValueError(f"{fn}: the grid is on {self.bitfield.device} but 'origins' is on {origins.device}; "
                             f"move one")
        offsets, ray_ids, t_starts, t_ends = occupancy_march_op(
            origins, directions, near, far, self.bitfield, self.center, self.half, self.resolution,
            step_size, cone_angle, max_step, max_samples, impl=impl, fn=fn,
        )
        return PackedSamples(ray_ids, t_starts, t_ends, offsets)

    @torch.no_grad()
    def sample(
        self,
        origins: torch.Tensor,
        directions: torch.Tensor,
        near: torch.Tensor | float,
        far: torch.Tensor | float,
        *,
        step_size: float,
        density_fn: DensityFn | None = None,
        cone_angle: float = 0.0,
        max_step: float = 1e10,
        max_samples: int = 0,
        early_stop_eps: float = TRANSMITTANCE_EPS,
        alpha_threshold: float = 0.0,
        impl: str = "auto",
    ) -> PackedSamples:
        """March, then (given `density_fn`) drop samples whose transmittance is below
        `early_stop_eps` or whose own opacity is below `alpha_threshold` (nerfacc's
        ``OccGridEstimator.sampling``). The returned samples carry no gradient; evaluate the
        field on them again to render with gradients."""
        samples = self.march(
            origins, directions, near, far, step_size=step_size, cone_angle=cone_angle, max_step=max_step,
            max_samples=max_samples, impl=impl,
        )
        if density_fn is None or len(samples) == 0:
            return samples
        points = origins[samples.ray_ids] + samples.midpoints()[:, None] * directions[samples.ray_ids]
        densities = density_fn(points).reshape(-1).to(samples.t_starts.dtype)
        check_finite("render3d.rays.OccupancyGrid.sample", "density_fn(points)", densities, nonnegative=True)
        return prune_samples(samples, densities, early_stop_eps=early_stop_eps, alpha_threshold=alpha_threshold)


def prune_samples(samples: PackedSamples, densities: torch.Tensor, *, early_stop_eps: float = TRANSMITTANCE_EPS,
                  alpha_threshold: float = 0.0) -> PackedSamples:
    """The samples whose transmittance is at least `early_stop_eps` and (with `alpha_threshold`
    > 0) whose own opacity is at least `alpha_threshold`, given their `densities` [N]: what
    `OccupancyGrid.sample` keeps, for a caller that computes the densities itself (a field
    that also takes the ray directions)."""
    tau = (densities * (samples.t_ends - samples.t_starts)).double()
    # Exclusive per-ray sum of tau: a global running sum (float64, so that the sum over many
    # rays does not swamp one ray's) minus its value at the ray's first sample.
    running = torch.cumsum(tau, 0) - tau
    transmittance = torch.exp(-(running - running[samples.offsets[samples.ray_ids]]))
    keep = transmittance >= early_stop_eps
    if alpha_threshold > 0:
        keep &= -torch.expm1(-tau) >= alpha_threshold
    return samples.select(keep)


def _per_ray(fn: str, name: str, value, n: int, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        check_tensor(fn, name, value, (n,), like=like, like_name="origins")
        return value
    return torch.full((n,), float(value), dtype=like.dtype, device=like.device)
