"""Ray–box intersection: one axis-aligned box for a batch of rays, and a batch of oriented
boxes (DisCoScene's object layout) giving per-(ray, box) near/far distances and hit masks."""

from __future__ import annotations

import torch

from .._checks import Sizes, check_tensor
from ..ops.march import ray_box_torch


def ray_aabb(
    origins: torch.Tensor,
    directions: torch.Tensor,
    aabb_min,
    aabb_max,
    *,
    near: float = 0.0,
    far: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersect rays with one axis-aligned box.

    Args:
        origins, directions: ``[..., 3]``; t is measured in units of the direction's length.
        aabb_min, aabb_max: the box corners, ``[3]`` (sequences or tensors).
        near, far: the segment of each ray considered (a box behind the camera is a miss).

    Returns:
        ``t_near [...]``, ``t_far [...]`` clipped to [near, far], and ``hit [...]`` (bool);
        where ``hit`` is False, t_near = t_far = near.
    """
    fn = "render3d.rays.ray_aabb"
    sizes = Sizes()
    check_tensor(fn, "origins", origins, ("...", 3), sizes=sizes)
    check_tensor(fn, "directions", directions, tuple(origins.shape), like=origins, like_name="origins")
    lo = torch.as_tensor(aabb_min, dtype=origins.dtype, device=origins.device)
    hi = torch.as_tensor(aabb_max, dtype=origins.dtype, device=origins.device)
    check_tensor(fn, "aabb_min", lo, (3,))
    check_tensor(fn, "aabb_max", hi, (3,))
    if not bool((lo < hi).all()):
        raise ValueError(f"{fn}: expected aabb_min < aabb_max on every axis, got {lo.tolist()} and {hi.tolist()}")
    t_enter, t_exit = ray_box_torch(origins, directions, lo, hi)
    return _clip(t_enter, t_exit, near, far)


def _clip(t_enter, t_exit, near, far):
    t_near = t_enter.clamp_min(near)
    t_far = t_exit.clamp_max(far)
    hit = t_near < t_far
    t_near = torch.where(hit, t_near, torch.full_like(t_near, near))
    t_far = torch.where(hit, t_far, torch.full_like(t_far, near))
    return t_near, t_far, hit


def world_to_box(points: torch.Tensor, rotations: torch.Tensor, translations: torch.Tensor,
                 scales: torch.Tensor) -> torch.Tensor:
    """Map world points into each box's canonical frame, where the box is [-1, 1]^3.

    A box is ``{translation + rotation @ (scale * u) : u in [-1, 1]^3}`` (scales are half
    extents). Shapes: points ``[B, N, 3]``, rotations ``[B, M, 3, 3]``, translations and
    scales ``[B, M, 3]`` -> ``[B, M, N, 3]``.
    """
    local = torch.einsum("bmji,bmnj->bmni", rotations, points[:, None] - translations[:, :, None])
    return local / scales[:, :, None]


def ray_boxes(
    origins: torch.Tensor,
    directions: torch.Tensor,
    rotations: torch.Tensor,
    translations: torch.Tensor,
    scales: torch.Tensor,
    *,
    near: float = 0.0,
    far: float = float("inf"),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intersect rays with a batch of oriented boxes.

    Args:
        origins, directions: ``[B, R, 3]``.
        rotations: ``[B, M, 3, 3]`` box-to-world rotations; translations ``[B, M, 3]`` box
            centres; scales ``[B, M, 3]`` half extents (see `world_to_box`).

    Returns:
        ``t_near [B, R, M]``, ``t_far [B, R, M]`` (in the rays' own t, which an affine map to
        the box frame preserves) and ``hit [B, R, M]``.
    """
    fn = "render3d.rays.ray_boxes"
    sizes = Sizes()
    check_tensor(fn, "origins", origins, ("B", "R", 3), sizes=sizes)
    check_tensor(fn, "directions", directions, ("B", "R", 3), sizes=sizes, like=origins, like_name="origins")
    check_tensor(fn, "rotations", rotations, ("B", "M", 3, 3), sizes=sizes, like=origins, like_name="origins")
    check_tensor(fn, "translations", translations, ("B", "M", 3), sizes=sizes, like=origins, like_name="origins")
    check_tensor(fn, "scales", scales, ("B", "M", 3), sizes=sizes, like=origins, like_name="origins")
    if not bool((scales > 0).all()):
        raise ValueError(f"{fn}: argument 'scales' expected positive half extents, got min {scales.min().item()}")
    local_o = world_to_box(origins, rotations, translations, scales)  # [B, M, R, 3]
    local_d = torch.einsum("bmji,brj->bmri", rotations, directions) / scales[:, :, None]
    t_enter, t_exit = ray_box_torch(local_o, local_d, -1.0, 1.0)
    t_near, t_far, hit = _clip(t_enter, t_exit, near, far)
    return t_near.transpose(1, 2), t_far.transpose(1, 2), hit.transpose(1, 2)
