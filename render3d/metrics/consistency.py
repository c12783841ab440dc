"""Multi-view consistency: does what one view shows, moved through its depth, land where the
other view shows it?

Each pixel of view A on the surface (mask) is lifted to 3D with A's depth and camera, projected
into view B, and compared with B's depth and colour interpolated bilinearly there: the
distance from B's camera to the point against B's depth (geometric error), and the colours
(photometric error). Only smooth patches of B are compared (the four pixels around the point
on B's surface, their depths within `occlusion_tolerance` of each other), so that silhouettes
and depth edges, which no interpolation resolves, do not count. A point farther than B's
surface by more than `occlusion_tolerance` (relative) is hidden behind it and skipped; a point
over B's background is counted apart (`off_surface`). Both directions, A to B and B to A, are
summed. Depth is render3d's: distance along the unit ray from the camera centre.
"""

from __future__ import annotations

import torch

from render3d._checks import Sizes, check_positive, check_tensor
from render3d.cameras import Cameras


def _one_way(image_a, depth_a, mask_a, cameras_a: Cameras, image_b, depth_b, mask_b, cameras_b: Cameras,
             tolerance: float) -> dict[str, torch.Tensor]:
    """Sums and counts for A -> B over the batch."""
    b, channels, height, width = image_b.shape
    origins, directions = cameras_a.generate_rays()
    points = origins + depth_a.reshape(b, -1, 1) * directions
    uv, z = cameras_b.project(points)
    # The 2 x 2 pixel centres around uv (centres at +0.5) and the bilinear weights.
    xy = uv - 0.5
    corner = xy.floor()
    frac = xy - corner
    corner = corner.long()
    inside = (z > 0) & (corner >= 0).all(-1) & (corner[..., 0] < width - 1) & (corner[..., 1] < height - 1)
    source = mask_a.reshape(b, -1) & inside
    base = corner[..., 1].clamp(0, height - 2) * width + corner[..., 0].clamp(0, width - 2)
    index = torch.stack([base, base + 1, base + width, base + width + 1], -1)  # [B, N, 4]
    weight = torch.stack([(1 - frac[..., 0]) * (1 - frac[..., 1]), frac[..., 0] * (1 - frac[..., 1]),
                          (1 - frac[..., 0]) * frac[..., 1], frac[..., 0] * frac[..., 1]], -1)

    def gather(values: torch.Tensor) -> torch.Tensor:  # [B, C, H, W] -> [B, C, N, 4]
        flat = values.reshape(b, values.shape[1], -1)
        return flat.gather(2, index.reshape(b, 1, -1).expand(-1, values.shape[1], -1)).reshape(
            b, values.shape[1], *index.shape[1:])

    depths, masks = gather(depth_b)[:, 0], gather(mask_b)[:, 0]
    nearest = depths.masked_fill(~masks, float("inf")).amin(-1)
    # Compare only over a smooth patch of B's surface: all four pixels on it, depths within the
    # tolerance of each other (no silhouette and no depth edge between them).
    smooth = masks.all(-1) & (depths.amax(-1) <= nearest * (1 + tolerance))
    target_depth = (depths * weight).sum(-1)
    distance = (points - cameras_b.centers[:, None]).norm(dim=-1)
    occluded = source & masks.any(-1) & (distance > nearest * (1 + tolerance))
    on_surface = source & smooth & ~occluded
    off_surface = source & ~masks.any(-1)
    target_colour = (gather(image_b) * weight[:, None]).sum(-1)
    depth_error = ((distance - target_depth).abs() * on_surface).sum()
    colour_error = ((image_a.reshape(b, channels, -1) - target_colour).abs().mean(1) * on_surface).sum()
    return {"depth": depth_error, "photometric": colour_error, "on_surface": on_surface.sum(),
            "off_surface": off_surface.sum(), "occluded": occluded.sum(), "source": source.sum()}


def reprojection_error(image_a: torch.Tensor, depth_a: torch.Tensor, cameras_a: Cameras, image_b: torch.Tensor,
                       depth_b: torch.Tensor, cameras_b: Cameras, *, mask_a: torch.Tensor | None = None,
                       mask_b: torch.Tensor | None = None, occlusion_tolerance: float = 0.02) -> dict[str, float]:
    """Reprojection error between two views of the same content (see the module docstring).

    image_a, image_b: [B, C, H, W] colours (errors are in their units); depth_a, depth_b:
    [B, 1, H, W] world units along the unit ray; cameras_a, cameras_b: B cameras each, at the
    images' size; mask_a, mask_b: bool [B, 1, H, W], the surface pixels (default: finite
    depth > 0). Views A and B may differ in size.

    Returns, over both directions: ``depth`` mean |distance to the other camera - its depth|
    (world units) over points that land on a smooth patch of the other view's surface;
    ``photometric`` the mean absolute colour difference (per channel) over the same points;
    ``off_surface`` the fraction of in-frame points that land on the other view's background;
    ``occluded`` the fraction hidden behind its surface (skipped); ``points`` how many points
    were compared.
    """
    fn = "reprojection_error"
    check_positive(fn, "occlusion_tolerance", occlusion_tolerance, allow_zero=True)
    views = []
    for tag, image, depth, cameras, mask in (("a", image_a, depth_a, cameras_a, mask_a),
                                             ("b", image_b, depth_b, cameras_b, mask_b)):
        sizes = Sizes()
        if not isinstance(cameras, Cameras):
            raise ValueError(f"{fn}: argument 'cameras_{tag}' expected Cameras, got {type(cameras).__name__}")
        check_tensor(fn, f"image_{tag}", image, (len(cameras), "C", cameras.height, cameras.width), sizes=sizes)
        check_tensor(fn, f"depth_{tag}", depth, (len(cameras), 1, cameras.height, cameras.width))
        if mask is None:
            mask = torch.isfinite(depth) & (depth > 0)
        check_tensor(fn, f"mask_{tag}", mask, tuple(depth.shape), dtype=torch.bool)
        cameras = cameras.to(depth.device, torch.float64)
        views.append((image.double(), torch.where(mask, depth, 0).double(), mask, cameras))
    if views[0][0].shape[1] != views[1][0].shape[1] or len(cameras_a) != len(cameras_b):
        raise ValueError(f"{fn}: arguments 'image_a', 'image_b' expected the same batch and channels, got "
                         f"{list(image_a.shape)} and {list(image_b.shape)}")
    totals = [_one_way(*views[0], *views[1], occlusion_tolerance), _one_way(*views[1], *views[0], occlusion_tolerance)]
    total = {k: float(sum(t[k] for t in totals)) for k in totals[0]}
    compared = max(total["on_surface"], 1.0)
    sources = max(total["source"], 1.0)
    return {"depth": total["depth"] / compared, "photometric": total["photometric"] / compared,
            "off_surface": total["off_surface"] / sources, "occluded": total["occluded"] / sources,
            "points": int(total["on_surface"])}
