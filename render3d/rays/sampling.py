"""Sampling along rays: stratified and disparity bins, inverse-CDF importance sampling from
coarse weights, interval construction, and merging sample sets from several fields.

Conventions: t is the distance parameter along a ray (in units of its direction's length);
dense samples are ``[B, R, S]``. A coarse pass uses *bins*: ``S + 1`` edges with one sample
point in each bin, and the bin itself as the sample's interval.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import Sizes, check_choice, check_finite, check_positive, check_tensor
from ..constants import EG3D_WEIGHT_SMOOTHING_PAD, PDF_EPS
from ..ops.sample_pdf import sample_pdf_op

SPACINGS = ("linear", "disparity")


def bin_edges(near: torch.Tensor, far: torch.Tensor, n_bins: int, *, spacing: str = "linear") -> torch.Tensor:
    """``n_bins + 1`` edges per ray between ``near [...]`` and ``far [...]`` -> ``[..., n_bins + 1]``.

    ``linear``: uniform in t. ``disparity``: uniform in 1/t (more samples near the camera;
    needs near > 0).
    """
    fn = "render3d.rays.bin_edges"
    check_tensor(fn, "near", near, ("...",))
    check_tensor(fn, "far", far, tuple(near.shape), like=near, like_name="near")
    check_positive(fn, "n_bins", n_bins, integer=True)
    check_choice(fn, "spacing", spacing, SPACINGS)
    u = torch.linspace(0, 1, n_bins + 1, dtype=near.dtype, device=near.device)
    if spacing == "linear":
        return near[..., None] + (far - near)[..., None] * u
    if not bool((near > 0).all()):
        raise ValueError(f"{fn}: spacing='disparity' expected near > 0 on every ray, got min {near.min().item()}")
    inv_near, inv_far = 1 / near[..., None], 1 / far[..., None]
    return 1 / (inv_near + (inv_far - inv_near) * u)


def stratified_points(edges: torch.Tensor, *, jitter: bool = True,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """One point per bin: uniformly jittered inside it, or its midpoint. ``[..., S+1] -> [..., S]``."""
    check_tensor("render3d.rays.stratified_points", "edges", edges, ("...", None))
    lower, upper = edges[..., :-1], edges[..., 1:]
    if not jitter:
        return 0.5 * (lower + upper)
    return lower + (upper - lower) * _uniform(lower.shape, edges, generator)


def _uniform(shape, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """U(0, 1) numbers drawn on the generator's device (so a CPU generator gives the same
    numbers whatever the tensors' device), returned on `like`'s device."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=device).to(like.device)


def smooth_weights_eg3d(weights: torch.Tensor) -> torch.Tensor:
    """EG3D's weight smoothing before importance sampling: max-pool(2), avg-pool(2), + 0.01.

    Spreads fine samples around sharp peaks, so a thin surface found by one coarse sample is
    not missed by the fine pass. ``[..., K] -> [..., K]``.
    """
    shape = weights.shape
    flat = weights.reshape(-1, 1, shape[-1])
    pooled = F.max_pool1d(flat, 2, 1, padding=1)
    return (F.avg_pool1d(pooled, 2, 1) + EG3D_WEIGHT_SMOOTHING_PAD).reshape(shape)


def importance_sample(
    edges: torch.Tensor,
    weights: torch.Tensor,
    n_samples: int,
    *,
    deterministic: bool = False,
    smoothing: str | None = None,
    generator: torch.Generator | None = None,
    impl: str = "auto",
) -> torch.Tensor:
    """Draw sample positions from the piecewise-constant density given by coarse weights.

    Args:
        edges: ``[..., K + 1]`` bin edges along each ray (non-decreasing).
        weights: ``[..., K]`` non-negative coarse weights (e.g. compositing weights).
        n_samples: samples per ray.
        deterministic: CDF levels ``linspace(0, 1, n)`` (as EG3D's ``det``); otherwise
            stratified levels ``(j + U) / n``.
        smoothing: None, or ``"eg3d"`` (see `smooth_weights_eg3d`).

    Returns:
        ``[..., n_samples]`` sorted positions, detached (no gradient flows into positions).
    """
    fn = "render3d.rays.importance_sample"
    sizes = Sizes()
    check_tensor(fn, "weights", weights, ("...", "K"), sizes=sizes)
    check_tensor(fn, "edges", edges, (*weights.shape[:-1], sizes["K"] + 1), like=weights, like_name="weights")
    if sizes["K"] == 0:
        raise ValueError(f"{fn}: argument 'weights' expected at least one bin per ray, got shape {list(weights.shape)}")
    check_positive(fn, "n_samples", n_samples, integer=True)
    check_choice(fn, "smoothing", smoothing, (None, "eg3d"))
    weights = weights.detach()
    check_finite(fn, "weights", weights, nonnegative=True)
    if smoothing == "eg3d":
        weights = smooth_weights_eg3d(weights)
    # Finite weights whose sum overflows (1e38 each in float32) would make the CDF inf/inf: such a
    # ray's weights are scaled to a maximum of 1 first (the PDF does not change).
    overflow = ~torch.isfinite(weights.sum(-1, keepdim=True))
    weights = torch.where(overflow, weights / weights.amax(-1, keepdim=True), weights)
    weights = weights + PDF_EPS
    batch = weights.shape[:-1]
    n_rays = batch.numel()
    if deterministic:
        u = torch.linspace(0, 1, n_samples, dtype=weights.dtype, device=weights.device).expand(n_rays, n_samples)
    else:
        jitter = _uniform((n_rays, n_samples), weights, generator)
        u = (torch.arange(n_samples, dtype=weights.dtype, device=weights.device) + jitter) / n_samples
    samples = sample_pdf_op(
        edges.detach().reshape(n_rays, edges.shape[-1]), weights.reshape(n_rays, weights.shape[-1]), u.contiguous(),
        impl=impl, fn=fn
    )
    return samples.reshape(*batch, n_samples)


def intervals_from_points(points: torch.Tensor, near: torch.Tensor,
                          far: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Intervals for sorted sample points: each point owns the stretch of ray closer to it than
    to its neighbours; the first starts at ``near``, the last ends at ``far``.

    Shapes: points ``[..., S]`` (sorted), near/far ``[...]`` -> (t_starts, t_ends) ``[..., S]``.
    """
    mids = 0.5 * (points[..., 1:] + points[..., :-1])
    t_starts = torch.cat([near[..., None], mids], dim=-1)
    t_ends = torch.cat([mids, far[..., None]], dim=-1)
    return t_starts, t_ends


def merge_samples(points: list[torch.Tensor], *per_sample: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Merge sample sets from several passes or fields and sort them by depth.

    Args:
        points: list of ``[..., S_k]`` sample positions (same leading shape).
        per_sample: any number of lists (one entry per set) of tensors ``[..., S_k, *rest]``
            carried along with the points (densities, features, ...).

    Returns:
        ``(points [..., sum S_k], *merged)``, each sorted by position along the ray.
    """
    fn = "render3d.rays.merge_samples"
    if not points:
        raise ValueError(f"{fn}: argument 'points' expected at least one sample set, got none")
    for j, group in enumerate(per_sample):
        if len(group) != len(points):
            raise ValueError(f"{fn}: per-sample list {j} expected {len(points)} tensors (one per set), "
                             f"got {len(group)}")
    merged = torch.cat(points, dim=-1)
    sorted_points, order = torch.sort(merged, dim=-1)
    out = [sorted_points]
    dim = merged.dim() - 1
    for group in per_sample:
        cat = torch.cat(group, dim=dim)
        trailing = cat.shape[order.dim():]
        index = order.reshape(*order.shape, *([1] * len(trailing))).expand(*order.shape, *trailing)
        out.append(torch.gather(cat, dim, index))
    return tuple(out)
