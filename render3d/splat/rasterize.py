"""Gaussian-splat rasterization: B independent Gaussian sets, each seen by its own camera (the
3D-GAN case), or one set seen by B cameras.

Pipeline (each step a native op with a PyTorch twin, see `render3d.ops.splat`): EWA projection
with culling -> tile binning and depth sort -> front-to-back blending per 16x16 tile.
Constants (alpha clamp, minimum alpha, transmittance cut-off, near plane, blur) default to
`render3d.constants`, gsplat's values; `ANCHOR_COMPATIBLE["inria"]` gives 3DGS's.
"""

from __future__ import annotations

import torch

from .._checks import Sizes, check_choice, check_finite, check_positive, check_tensor
from ..constants import ALPHA_MAX, ALPHA_MIN, BLUR_2D, NEAR_PLANE, SPLAT_TRANSMITTANCE_EPS
from ..ops.splat import isect_tiles_op, project_op, raster_op
from .sh import sh_to_color

MODES = ("classic", "antialiased")
RADIUS_MODES = ("3sigma", "opacity")
DEPTH_ALPHA_EPS = 1e-10


def rasterize(
    means: torch.Tensor,
    quats: torch.Tensor | None,
    scales: torch.Tensor | None,
    opacities: torch.Tensor,
    features: torch.Tensor,
    cam2world: torch.Tensor,
    intrinsics: torch.Tensor,
    width: int,
    height: int,
    *,
    background: torch.Tensor | float | None = None,
    sh_degree: int | None = None,
    mode: str = "classic",
    covars: torch.Tensor | None = None,
    radius_mode: str = "3sigma",
    near_plane: float = NEAR_PLANE,
    far_plane: float = 1e10,
    eps2d: float = BLUR_2D,
    alpha_max: float = ALPHA_MAX,
    alpha_min: float = ALPHA_MIN,
    transmittance_eps: float = SPLAT_TRANSMITTANCE_EPS,
    check_values: bool = True,
    impl: str = "auto",
) -> dict[str, torch.Tensor]:
    """Render Gaussians.

    Args:
        means: ``[G, N, 3]`` world positions; G = B (a set per camera) or 1 (one set, B cameras).
        quats: ``[G, N, 4]`` rotations (w, x, y, z), normalised here; None with `covars`.
        scales: ``[G, N, 3]`` standard deviations (world units, >= 0); None with `covars`.
        opacities: ``[G, N]`` in [0, 1].
        features: ``[G, N, C]`` colours or features (any C >= 1), or with `sh_degree` the SH
            coefficients ``[G, N, K, 3]`` (K >= (sh_degree + 1)^2) giving RGB.
        cam2world: ``[B, 4, 4]`` OpenCV camera-to-world; intrinsics ``[B, 3, 3]`` normalised by
            the image size (render3d's camera convention).
        width, height: image size in pixels.
        background: colour behind the Gaussians: a float, ``[C]`` or ``[B, C]``; None: black.
        mode: ``"classic"``, or ``"antialiased"`` (opacity times the blur's compensation,
            mip-splatting style).
        covars: ``[G, N, 6]`` covariances (xx, xy, xz, yy, yz, zz) instead of quats and scales.
        radius_mode: ``"3sigma"`` (3.33 sigma per axis) or ``"opacity"`` (faint Gaussians get
            smaller footprints; those below `alpha_min` are culled).
        check_values: check inputs for NaN/inf and ranges (a few device syncs).
        impl: ``"auto" | "native" | "torch"``.

    Returns:
        ``image [B, C, H, W]``, ``depth [B, 1, H, W]`` (expected camera z of what is seen, 0
        where nothing is), ``alpha [B, 1, H, W]``, and ``means2d [B, N, 2]`` (pixel positions;
        call ``.retain_grad()`` on it to get the screen-space gradients densification uses)
        and ``radii [B, N, 2]`` (int32, 0 = culled).
    """
    fn = "render3d.splat.rasterize"
    sizes = Sizes()
    check_tensor(fn, "cam2world", cam2world, ("B", 4, 4), sizes=sizes)
    check_tensor(fn, "intrinsics", intrinsics, ("B", 3, 3), sizes=sizes, like=cam2world, like_name="cam2world")
    check_tensor(fn, "means", means, ("G", "N", 3), sizes=sizes, like=cam2world, like_name="cam2world")
    B, G = sizes["B"], sizes["G"]
    if B == 0:
        raise ValueError(f"{fn}: arguments 'cam2world', 'intrinsics' expected at least one camera, got [0, 4, 4]")
    if G not in (1, B):
        raise ValueError(f"{fn}: argument 'means' expected a leading size of 1 or B={B} (one set per camera), got {G}")
    like = dict(sizes=sizes, like=means, like_name="means")
    if covars is not None:
        if quats is not None or scales is not None:
            raise ValueError(f"{fn}: give either 'quats' and 'scales' or 'covars', got both")
        check_tensor(fn, "covars", covars, ("G", "N", 6), **like)
    else:
        if quats is None or scales is None:
            raise ValueError(f"{fn}: arguments 'quats' and 'scales' are required without 'covars'")
        check_tensor(fn, "quats", quats, ("G", "N", 4), **like)
        check_tensor(fn, "scales", scales, ("G", "N", 3), **like)
    check_tensor(fn, "opacities", opacities, ("G", "N"), **like)
    if sh_degree is None:
        check_tensor(fn, "features", features, ("G", "N", "C"), **like)
    else:
        if not isinstance(sh_degree, int) or not 0 <= sh_degree <= 3:
            raise ValueError(f"{fn}: argument 'sh_degree' expected 0, 1, 2 or 3, got {sh_degree!r}")
        check_tensor(fn, "features", features, ("G", "N", "K", 3), **like)
        if sizes["K"] < (sh_degree + 1) ** 2:
            raise ValueError(f"{fn}: argument 'features' expected at least {(sh_degree + 1) ** 2} SH coefficients for "
                             f"sh_degree={sh_degree}, got {sizes['K']}")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{fn}: argument '{name}' expected a positive int, got {value!r}")
    check_choice(fn, "mode", mode, MODES)
    check_choice(fn, "radius_mode", radius_mode, RADIUS_MODES)
    check_positive(fn, "near_plane", near_plane)
    if not far_plane > near_plane:
        raise ValueError(f"{fn}: argument 'far_plane' expected a number greater than near_plane={near_plane}, "
                         f"got {far_plane}")
    # alpha of 1 or more: a transmittance of 0 (which the backward pass divides by) or below; alpha_min at or
    # above alpha_max skips every splat
    if not (0 < alpha_max < 1 and 0 <= alpha_min < alpha_max and 0 <= transmittance_eps < 1 and eps2d >= 0):
        raise ValueError(f"{fn}: arguments 'alpha_max', 'alpha_min', 'transmittance_eps', 'eps2d' expected "
                         f"0 <= alpha_min < alpha_max < 1, transmittance_eps in [0, 1) and eps2d >= 0, got "
                         f"{alpha_max}, {alpha_min}, {transmittance_eps}, {eps2d}")
    if check_values:
        _check_values(fn, means, quats, scales, covars, opacities, features, cam2world, intrinsics)

    if G == 1 and B > 1:  # one set seen by B cameras: autograd sums the B gradients back
        expand = lambda t: None if t is None else t.expand(B, *t.shape[1:])  # noqa: E731
        means, quats, scales, covars, opacities, features = map(
            expand, (means, quats, scales, covars, opacities, features))
    rot = cam2world[:, :3, :3]
    viewmats = torch.zeros_like(cam2world)
    viewmats[:, :3, :3] = rot.transpose(1, 2)
    viewmats[:, :3, 3] = -(rot.transpose(1, 2) @ cam2world[:, :3, 3:])[..., 0]
    viewmats[:, 3, 3] = 1
    pixel_k = torch.stack([intrinsics[:, 0, 0] * width, intrinsics[:, 1, 1] * height,
                           intrinsics[:, 0, 2] * width, intrinsics[:, 1, 2] * height], dim=-1)

    radii, means2d, depths, conics, compensations = project_op(
        means, quats, scales, covars, opacities if radius_mode == "opacity" else None, viewmats, pixel_k, width, height,
        near_plane, far_plane, eps2d, alpha_min, mode == "antialiased", impl=impl, fn=fn,
    )
    if sh_degree is not None:
        colors = sh_to_color(sh_degree, features, means - cam2world[:, None, :3, 3])
    else:
        colors = features
    effective = opacities * compensations if mode == "antialiased" else opacities
    _, ids, tile_offsets = isect_tiles_op(means2d, radii, depths, width, height, impl=impl, fn=fn)
    acc, transmittance, _ = raster_op(
        means2d, conics, torch.cat([colors, depths[..., None]], dim=-1), effective, tile_offsets, ids, width, height,
        alpha_max, alpha_min, transmittance_eps, impl=impl, fn=fn,
    )
    C = colors.shape[-1]
    image = acc[..., :C]
    if background is not None:
        bg = torch.as_tensor(background, dtype=acc.dtype, device=acc.device)
        if bg.dim() == 0:
            bg = bg.expand(C)
        if bg.shape not in ((C,), (B, C)):
            raise ValueError(f"{fn}: argument 'background' expected a float, [C={C}] or [B={B}, C={C}], "
                             f"got {list(bg.shape)}")
        image = image + transmittance[..., None] * (bg if bg.dim() == 1 else bg[:, None, None, :])
    alpha = 1 - transmittance
    depth = torch.where(alpha > DEPTH_ALPHA_EPS, acc[..., C] / alpha.clamp_min(DEPTH_ALPHA_EPS), 0)
    return {
        "image": image.permute(0, 3, 1, 2),
        "depth": depth[:, None],
        "alpha": alpha[:, None],
        "means2d": means2d,
        "radii": radii,
    }


def _check_values(fn, means, quats, scales, covars, opacities, features, cam2world, intrinsics) -> None:
    for name, tensor in (("means", means), ("features", features), ("cam2world", cam2world),
                         ("intrinsics", intrinsics), ("quats", quats), ("covars", covars)):
        if tensor is not None:
            check_finite(fn, name, tensor.detach())
    if scales is not None:
        check_finite(fn, "scales", scales.detach(), nonnegative=True)
    check_finite(fn, "opacities", opacities.detach(), nonnegative=True)
    if bool((opacities > 1).any()):
        raise ValueError(f"{fn}: argument 'opacities' expected values in [0, 1], got {opacities.max().item()}")
    if quats is not None:
        norms = quats.detach().norm(dim=-1)
        if not bool((norms > 0).all()):
            index = tuple((norms <= 0).nonzero()[0].tolist())
            raise ValueError(f"{fn}: argument 'quats' expected non-zero quaternions (they are normalised), "
                             f"got a zero quaternion at index {index}")
    if bool((intrinsics[:, 0, 0] <= 0).any() | (intrinsics[:, 1, 1] <= 0).any()):
        raise ValueError(f"{fn}: argument 'intrinsics' expected positive focal lengths")
