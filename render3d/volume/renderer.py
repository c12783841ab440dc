"""The volume renderer: cameras -> rays -> samples -> field -> compositing -> images.

Two ways to place samples:

- *coarse + importance* (training and inference): ``n_coarse`` stratified samples per ray,
  their compositing weights (optionally smoothed as EG3D does) drive ``n_fine`` inverse-CDF
  samples, and both sets are composited together in depth order (the coarse evaluations are
  reused, as in EG3D; only the densities are sorted, see `_composite_sets`);
- *occupancy marching* (inference with a batch-independent field, e.g. the viewer): an
  `OccupancyGrid` skips empty space and samples are composited packed.

Rays are processed in chunks of ``chunk`` rays so that memory stays bounded whatever the
image size. Normals are the negated, normalised gradient of density at each sample
(autograd through the field), composited with the same weights.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch

from .._checks import Sizes, check_box, check_choice, check_finite, check_positive, check_tensor
from ..constants import DEPTH_OPACITY_EPS
from ..rays import (
    OccupancyGrid,
    SPACINGS,
    bin_edges,
    importance_sample,
    intervals_from_points,
    prune_samples,
    ray_aabb,
    stratified_points,
)
from .composite import composite, composite_packed

# (points [B,N,3], dirs [B,N,3]) -> (sigma [B,N], feat [B,N,C])
FieldFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def _check_background(fn: str, background) -> tuple[float, ...] | None:
    """None, or the colour as a tuple of finite floats (one: every channel). A string or a NaN
    used to surface at the first render, as torch's error or as NaN images."""
    if background is None:
        return None
    try:
        values = torch.as_tensor(background, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        values = None
    if values is None or values.dim() > 1 or values.numel() == 0 or not bool(torch.isfinite(values).all()):
        raise ValueError(f"{fn}: argument 'background' expected None, a finite float or [C] finite floats, "
                         f"got {background!r}")
    return tuple(values.reshape(-1).tolist())


class VolumeRenderer(torch.nn.Module):
    """Render a field (see `render3d.volume.fields.Field`) from a batch of cameras."""

    def __init__(
        self,
        *,
        n_coarse: int = 48,                 # stratified samples per ray
        n_fine: int = 48,                   # importance samples per ray (0: coarse only)
        near: float = 0.1,                  # ray segment start (clips the box's entry too)
        far: float = 10.0,                  # ray segment end
        bbox=None,                          # (min_xyz, max_xyz): sample only where rays cross this box
        spacing: str = "linear",            # coarse bins uniform in t ("linear") or in 1/t ("disparity")
        weight_smoothing: str | None = "eg3d",  # smooth coarse weights before importance sampling
        background=None,                    # colour behind the field: None (black), a float, or [C]
        chunk: int = 1 << 15,               # rays per chunk, across the batch
        occupancy_grid: OccupancyGrid | None = None,  # march through it in eval mode (batch-independent fields)
        step_size: float = 5e-3,            # marching step with the occupancy grid
        cone_angle: float = 0.0,            # marching step growth with distance (0: constant)
        check_values: bool = True,          # report NaN/negative densities from the field (a device sync per chunk)
        impl: str = "auto",                 # kernels: "auto" | "native" | "torch"
    ):
        super().__init__()
        fn = "render3d.volume.VolumeRenderer"
        check_positive(fn, "n_coarse", n_coarse, integer=True)
        check_positive(fn, "n_fine", n_fine, allow_zero=True, integer=True)
        check_positive(fn, "near", near, allow_zero=True)
        if not (isinstance(far, numbers.Real) and far > near):
            raise ValueError(f"{fn}: argument 'far' expected a number greater than near={near}, got {far!r}")
        if bbox is None and not math.isfinite(far):     # with no bbox to end the rays, the bins would be NaN
            raise ValueError(f"{fn}: argument 'far' expected a finite number when no bbox is given, got {far!r}")
        check_choice(fn, "spacing", spacing, SPACINGS)
        check_choice(fn, "weight_smoothing", weight_smoothing, (None, "eg3d"))
        check_positive(fn, "chunk", chunk, integer=True)
        check_positive(fn, "step_size", step_size)
        check_choice(fn, "impl", impl, ("auto", "native", "torch"))
        self.n_coarse, self.n_fine = n_coarse, n_fine
        self.near, self.far = float(near), float(far)
        self.bbox = None if bbox is None else tuple(tuple(corner.tolist()) for corner in check_box(fn, "bbox", bbox))
        self.spacing, self.weight_smoothing = spacing, weight_smoothing
        self.background = _check_background(fn, background)
        self.chunk = chunk
        self.occupancy_grid = occupancy_grid
        self.step_size, self.cone_angle = step_size, cone_angle
        self.check_values = check_values
        self.impl = impl

    def forward(self, field: FieldFn, cameras, *, normals: bool = True, jitter: bool | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Render images.

        Args:
            field: callable ``(points [B, N, 3], directions [B, N, 3]) -> (density [B, N],
                features [B, N, C])``; batch element b of the points belongs to camera b.
            cameras: `render3d.cameras.Cameras` with B cameras of one image size.
            normals: also return composited normals (one extra autograd pass through the field).
            jitter: jitter the coarse samples (default: in training mode only).

        Returns:
            ``image [B, C, H, W]`` (composited features), ``depth [B, 1, H, W]`` (distance along
            the ray; where nothing is seen, the ray's far end on both paths: ``far``, or with a
            bbox the box's exit, and ``near`` for a ray that misses the box), ``alpha [B, 1, H,
            W]`` (opacity) and, on request, ``normals [B, 3, H, W]`` (world space, unit length
            where alpha > 0).
        """
        origins, directions = cameras.generate_rays()
        out = self.render_rays(field, origins, directions, normals=normals, jitter=jitter, generator=generator)
        B, H, W = origins.shape[0], cameras.height, cameras.width

        def image(x):
            return x.reshape(B, H, W, -1).permute(0, 3, 1, 2)

        result = {"image": image(out["features"]), "depth": image(out["depth"]), "alpha": image(out["opacity"])}
        if normals:
            result["normals"] = image(out["normals"])
        return result

    def render_rays(self, field: FieldFn, origins: torch.Tensor, directions: torch.Tensor, *, normals: bool = False,
                    jitter: bool | None = None, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Render rays ``origins, directions [B, R, 3]`` (unit directions: then depth is a
        distance). Returns ``features [B, R, C]``, ``depth [B, R]``, ``opacity [B, R]`` and,
        on request, ``normals [B, R, 3]``."""
        fn = "render3d.volume.VolumeRenderer.render_rays"
        sizes = Sizes()
        check_tensor(fn, "origins", origins, ("B", "R", 3), sizes=sizes)
        check_tensor(fn, "directions", directions, ("B", "R", 3), sizes=sizes, like=origins, like_name="origins")
        jitter = self.training if jitter is None else jitter
        B, R = sizes["B"], sizes["R"]
        if B == 0 or R == 0:        # nothing to call the field on, so no feature size to return
            raise ValueError(f"{fn}: arguments 'origins', 'directions' expected at least one ray, got shape "
                             f"{list(origins.shape)}")
        use_grid = self.occupancy_grid is not None and not self.training
        step = max(1, self.chunk // B)
        pieces = []
        for start in range(0, R, step):
            o, d = origins[:, start:start + step], directions[:, start:start + step]
            if use_grid:
                pieces.append(self._render_marched(field, o, d, normals))
            else:
                pieces.append(self._render_sampled(field, o, d, normals, jitter, generator))
        return {key: torch.cat([p[key] for p in pieces], dim=1) for key in pieces[0]}

    # --- pieces ----------------------------------------------------------------------------

    def _ray_range(self, origins, directions):
        if self.bbox is None:
            near = torch.full(origins.shape[:-1], self.near, dtype=origins.dtype, device=origins.device)
            return near, torch.full_like(near, self.far)
        t_near, t_far, _ = ray_aabb(origins, directions, self.bbox[0], self.bbox[1], near=self.near, far=self.far)
        return t_near, t_far

    def _query(self, field, origins, directions, t, normals):
        """Evaluate the field at ``origins + t * directions`` for ``t [B, r, S]``."""
        B, r, S = t.shape
        points = (origins[:, :, None] + t[..., None] * directions[:, :, None]).reshape(B, r * S, 3)
        dirs = directions[:, :, None].expand(B, r, S, 3).reshape(B, r * S, 3)
        if not normals:
            density, features = field(points, dirs)
            return density.reshape(B, r, S), features.reshape(B, r, S, features.shape[-1]), None
        differentiable = torch.is_grad_enabled()  # keep the normals' graph only if the caller wants gradients
        with torch.enable_grad():
            if not points.requires_grad:
                points = points.detach().requires_grad_(True)
            density, features = field(points, dirs)
            (grad,) = torch.autograd.grad(density.sum(), points, create_graph=differentiable)
        normal = -grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        if not differentiable:
            density, features = density.detach(), features.detach()
        return density.reshape(B, r, S), features.reshape(B, r, S, features.shape[-1]), normal.reshape(B, r, S, 3)

    def _background(self, channels, with_normals, like):
        if self.background is None:
            return None
        if len(self.background) not in (1, channels):
            raise ValueError(f"render3d.volume.VolumeRenderer: argument 'background' expected a float or "
                             f"[C={channels}] (the field's channels), got {len(self.background)} values "
                             f"{list(self.background)}")
        bg = torch.tensor(self.background, dtype=like.dtype, device=like.device).expand(channels)
        if with_normals:
            bg = torch.cat([bg, bg.new_zeros(3)])
        return bg

    def _finish(self, result, channels, normals):
        values = result["values"]
        out = {"features": values[..., :channels], "depth": result["depth"][..., None],
               "opacity": result["opacity"][..., None]}
        if normals:
            n = values[..., channels:]
            out["normals"] = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return out

    def _render_sampled(self, field, origins, directions, normals, jitter, generator):
        t_near, t_far = self._ray_range(origins, directions)
        edges = bin_edges(t_near, t_far, self.n_coarse, spacing=self.spacing)
        t_coarse = stratified_points(edges, jitter=jitter, generator=generator)
        density, features, normal = self._query(field, origins, directions, t_coarse, normals)
        channels = features.shape[-1]
        background = self._background(channels, normals, features)
        values = torch.cat([features, normal], dim=-1) if normals else features
        if self.n_fine == 0:
            result = composite(density, values, edges[..., :-1].contiguous(), edges[..., 1:].contiguous(),
                               background=background, check_values=self.check_values, impl=self.impl)
            return self._finish(result, channels, normals)
        with torch.no_grad():
            weights = composite(density.detach(), density.new_zeros(*density.shape, 1), edges[..., :-1],
                                edges[..., 1:], return_weights=True, impl=self.impl)["weights"]
        t_fine = importance_sample(edges, weights, self.n_fine, deterministic=not jitter,
                                   smoothing=self.weight_smoothing, generator=generator, impl=self.impl)
        density_f, features_f, normal_f = self._query(field, origins, directions, t_fine, normals)
        values_f = torch.cat([features_f, normal_f], dim=-1) if normals else features_f
        result = self._composite_sets([t_coarse, t_fine], [density, density_f], [values, values_f], t_near, t_far,
                                      background)
        return self._finish(result, channels, normals)

    def _composite_sets(self, points, densities, values, t_near, t_far, background):
        """Composite sample sets of the same rays (coarse and fine: ``points [B, r, S_k]``,
        ``densities [B, r, S_k]``, ``values [B, r, S_k, C]``) as one set in depth order, without
        sorting the values: the kernel composites the sorted densities alone (C = 0) into
        weights, which go back to their sets, where each set's values are summed with them.
        Sorting the values (`merge_samples`) copies all of them twice, and their gradients twice:
        at VolumeGAN's 512 channels that took twice as long forward and backward on the CPU, with
        2.4x the memory (`bench/volume.py`, its "merge" entry)."""
        t_all, order = torch.sort(torch.cat(points, dim=-1), dim=-1)
        density = torch.cat(densities, dim=-1).gather(-1, order)
        t_starts, t_ends = intervals_from_points(t_all, t_near, t_far)
        result = composite(density, density.new_zeros(*density.shape, 0), t_starts.contiguous(), t_ends.contiguous(),
                           return_weights=True, check_values=self.check_values, impl=self.impl)
        weights = torch.zeros_like(result["weights"]).scatter(-1, order, result["weights"])  # each set's order
        sets = weights.split([p.shape[-1] for p in points], dim=-1)
        acc = sum(torch.einsum("brs,brsc->brc", w, v) for w, v in zip(sets, values))
        if background is not None:
            acc = acc + (1 - result["opacity"])[..., None] * background
        return {"values": acc, "depth": result["depth"], "opacity": result["opacity"]}

    def _render_marched(self, field, origins, directions, normals):
        grid = self.occupancy_grid
        B, r, _ = origins.shape
        outputs = []
        for b in range(B):
            o, d = origins[b], directions[b]
            t_near, t_far = self._ray_range(o, d)
            samples = grid.march(o, d, t_near, t_far, step_size=self.step_size, cone_angle=self.cone_angle,
                                 impl=self.impl)
            if len(samples):       # drop samples behind opaque ones; the field sees its rays' directions
                ray_o, ray_d = o[samples.ray_ids], d[samples.ray_ids]
                with torch.no_grad():
                    density = field(ray_o[None] + samples.midpoints()[None, :, None] * ray_d[None], ray_d[None])[0]
                density = density.reshape(-1).to(samples.t_starts.dtype)
                check_finite("render3d.volume.VolumeRenderer", "field(points, directions) densities", density,
                             nonnegative=True)
                samples = prune_samples(samples, density)
            t_mid = samples.midpoints()
            ray_o, ray_d = o[samples.ray_ids], d[samples.ray_ids]
            density, features, normal = self._query(field, ray_o[None], ray_d[None], t_mid[None, :, None], normals)
            density, features = density.reshape(-1), features.reshape(len(samples), features.shape[-1])
            channels = features.shape[-1]
            values = torch.cat([features, normal.reshape(-1, 3)], dim=-1) if normals else features
            result = composite_packed(density, values, samples.t_starts, samples.t_ends, offsets=samples.offsets,
                                      background=self._background(channels, normals, values),
                                      check_values=self.check_values, impl=self.impl)
            # A ray the grid empties has no samples, so composite_packed knows no far end for it
            # (depth 0); give every transparent ray its far end, as the sampled path does.
            result["depth"] = torch.where(result["opacity"] > DEPTH_OPACITY_EPS, result["depth"], t_far)
            outputs.append(self._finish(result, channels, normals))
        return {key: torch.stack([o[key] for o in outputs]) for key in outputs[0]}
