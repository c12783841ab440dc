"""Occupancy-grid ray marching: the native op and its PyTorch twin.

Both return packed samples ``(offsets [R+1], ray_ids [N], t_starts [N], t_ends [N])`` for
rays through a multi-level occupancy bitfield; cuda/march/march.h defines the sample set
(a lattice of steps from each ray's near plane; a step is kept iff its midpoint is before the
far plane, inside the grid and in an occupied cell). The twin evaluates every lattice point
with the same floating-point operations, so the two agree exactly, not just closely.
Public entry: `render3d.rays.OccupancyGrid`.
"""

from __future__ import annotations

import torch

from ._dispatch import use_native

_LATTICE_LIMIT = 1 << 26  # lattice points the twin may materialise at once


def ray_box_torch(origins, directions, lo, hi):
    """Slab test of rays ``[..., 3]`` against the box [lo, hi] (broadcasting), with the float
    operations of march_ray_box in march.h: (t_enter, t_exit), t_enter > t_exit on a miss. A
    ray parallel to a slab is unconstrained by it inside and misses outside. Differentiable
    (the parallel case is masked before dividing, so it cannot leak NaN gradients)."""
    parallel = directions == 0
    inv = 1.0 / torch.where(parallel, torch.ones_like(directions), directions)
    t0 = (lo - origins) * inv
    t1 = (hi - origins) * inv
    t_min, t_max = torch.minimum(t0, t1), torch.maximum(t0, t1)
    within = (origins >= lo) & (origins <= hi)
    inf = torch.full_like(t_min, float("inf"))
    t_min = torch.where(parallel, torch.where(within, -inf, inf), t_min)
    t_max = torch.where(parallel, torch.where(within, inf, -inf), t_max)
    return t_min.amax(-1), t_max.amin(-1)


def _margin(t):
    return 1e-4 * (1 + t.abs())


def occupancy_march_torch(
    origins, directions, t_near, t_far, bitfield, center, half, resolution, step_size, cone_angle, max_step,
    max_samples,
):
    device, dtype = origins.device, origins.dtype
    n_rays, levels = origins.shape[0], bitfield.shape[0]
    scalar = lambda x: torch.tensor(x, dtype=dtype, device=device)  # noqa: E731 - cast like the kernel
    center_t, half_t = torch.tensor(center, dtype=dtype, device=device), torch.tensor(half, dtype=dtype, device=device)
    step, cone, max_dt = scalar(step_size), scalar(cone_angle), scalar(max_step)
    outer = float(1 << (levels - 1))

    t_enter, t_exit = ray_box_torch(origins, directions, center_t - half_t * outer, center_t + half_t * outer)
    hit = (t_enter <= t_exit) & (t_near < t_far)
    start = torch.maximum(t_near, t_enter - _margin(t_enter))
    stop = torch.minimum(t_far, t_exit + _margin(t_exit))
    start = torch.where(hit, start, t_near)
    stop = torch.where(hit, stop, t_near)

    near = t_near[:, None]
    if cone_angle <= 0:
        first = (torch.ceil((start - t_near) / step - 0.5) - 1).clamp_min(0)
        last = torch.ceil((stop - t_near) / step) + 1
        span = int((last - first).clamp_min(1).max()) if n_rays else 1
        _check_lattice(n_rays, span)
        k = first.to(torch.int64)[:, None] + torch.arange(span, device=device)
        t0 = near + k.to(dtype) * step
        t1 = near + (k + 1).to(dtype) * step
    else:
        lattice = [t_near]
        t = t_near
        reach = torch.where(hit, stop, torch.full_like(stop, -float("inf")))
        while bool((t < reach).any()):
            t_next = t + (t * cone).clamp(step, max_dt)
            if not bool((t_next > t).any()):
                break
            lattice.append(t_next)
            t = t_next
            _check_lattice(n_rays, len(lattice))
        lattice = torch.stack(lattice, dim=1)
        t0, t1 = lattice[:, :-1], lattice[:, 1:]
    moving = torch.cumprod((t1 > t0).to(torch.int64), dim=1).bool()  # the lattice stalls under float absorption
    mid = (t0 + t1) * 0.5

    points = origins[:, None, :] + mid[..., None] * directions[:, None, :]
    q = (points - center_t) / half_t
    extent = q.abs().amax(-1)
    inside = extent <= outer
    level = torch.zeros_like(extent, dtype=torch.int64)
    for lvl in range(levels - 1):
        level += (extent > float(1 << lvl)).to(torch.int64)
    scale = torch.pow(2.0, level.to(dtype))
    cell = torch.floor((q / scale[..., None] + 1) * 0.5 * resolution).to(torch.int64).clamp(0, resolution - 1)
    bit = (cell[..., 0] * resolution + cell[..., 1]) * resolution + cell[..., 2]
    byte = bitfield[level, bit >> 3].to(torch.int64)
    occupied = ((byte >> (bit & 7)) & 1).bool()

    keep = hit[:, None] & moving & (mid < t_far[:, None]) & inside & occupied
    if max_samples > 0:
        keep &= torch.cumsum(keep.to(torch.int64), dim=1) <= max_samples
    counts = keep.sum(1)
    offsets = torch.zeros(n_rays + 1, dtype=torch.int64, device=device)
    offsets[1:] = torch.cumsum(counts, 0)
    ray_ids = torch.arange(n_rays, device=device)[:, None].expand_as(keep)[keep]
    return offsets, ray_ids, t0[keep], t1[keep]


def _check_lattice(n_rays: int, span: int) -> None:
    if n_rays * span > _LATTICE_LIMIT:
        raise RuntimeError(
            f"occupancy_march (torch twin): {n_rays} rays x {span} lattice steps is too large to materialise; "
            "use impl='native', a larger step_size, or fewer rays per call"
        )


def occupancy_march_op(
    origins, directions, t_near, t_far, bitfield, center, half, resolution, step_size, cone_angle, max_step,
    max_samples, *, impl: str = "auto", fn: str,
):
    """Unchecked dispatch between the native op and the twin (callers have checked arguments)."""
    args = (
        origins.contiguous(), directions.contiguous(), t_near.contiguous(), t_far.contiguous(), bitfield.contiguous(),
        [float(c) for c in center], [float(h) for h in half], int(resolution), float(step_size), float(cone_angle),
        float(max_step), int(max_samples),
    )
    with torch.no_grad():
        if use_native(fn, impl, origins.device):
            return torch.ops.render3d.occupancy_march(*args)
        return occupancy_march_torch(*args)
