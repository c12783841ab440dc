"""Volume compositing: densities and per-sample values along rays -> pixels.

``composite`` takes dense samples ``[B, R, S]``; ``composite_packed`` takes flat samples
grouped by ray (what occupancy-grid marching produces). Both run one fused native kernel
(forward and a suffix-sum backward, CPU and CUDA) or its PyTorch twin; see
`render3d.ops.composite`.

Quadrature: sample i covers the interval [t_start_i, t_end_i] with constant density sigma_i,
so alpha_i = 1 - exp(-sigma_i (t_end_i - t_start_i)) and w_i = T_i alpha_i with
T_i = prod_{k<i} (1 - alpha_k). Depth is the expected interval midpoint given that the ray
terminates in the samples: sum_i w_i m_i / opacity, clamped to the ray's sample range; a
ray with zero opacity gets the far end of its range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import FLOATING, Sizes, check_choice, check_finite, check_tensor
from ..constants import DEPTH_OPACITY_EPS
from ..ops.composite import composite_op


def composite(
    densities: torch.Tensor,
    values: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    *,
    background: torch.Tensor | float | None = None,
    return_weights: bool = False,
    check_values: bool = True,
    impl: str = "auto",
) -> dict[str, torch.Tensor]:
    """Composite dense samples along rays.

    Args:
        densities: ``[B, R, S]`` non-negative densities (sigma, per unit of t).
        values: ``[B, R, S, C]`` per-sample colours or features, any C.
        t_starts, t_ends: ``[B, R, S]`` interval bounds along each ray, in the units of t.
        background: colour seen through the remaining transmittance: a float, ``[C]``, or
            anything broadcastable to ``[B, R, C]``. None: black (no background term).
        return_weights: also return the per-sample weights ``[B, R, S]``.
        check_values: check densities for NaN/inf/negative values and the intervals for NaN/inf
            and t_ends < t_starts (one device sync).
        impl: ``"auto" | "native" | "torch"`` (see `render3d.ops`).

    Returns:
        dict with ``values [B, R, C]``, ``depth [B, R]``, ``opacity [B, R]`` and, on request,
        ``weights [B, R, S]``. Differentiable w.r.t. densities, values, t_starts, t_ends and
        background.
    """
    fn = "render3d.volume.composite"
    sizes = Sizes()
    check_tensor(fn, "densities", densities, ("B", "R", "S"), sizes=sizes)
    check_tensor(fn, "values", values, ("B", "R", "S", "C"), sizes=sizes, like=densities, like_name="densities")
    check_tensor(fn, "t_starts", t_starts, ("B", "R", "S"), sizes=sizes, like=densities, like_name="densities")
    check_tensor(fn, "t_ends", t_ends, ("B", "R", "S"), sizes=sizes, like=densities, like_name="densities")
    if check_values:
        _check_samples(fn, densities, t_starts, t_ends)
    B, R, S, C = sizes["B"], sizes["R"], sizes["S"], sizes["C"]
    if S == 0:
        raise ValueError(f"{fn}: argument 'densities' expected at least one sample per ray (S >= 1), got S=0")

    offsets = torch.arange(B * R + 1, device=densities.device, dtype=torch.int64) * S
    acc, depth_sum, opacity, weights = composite_op(
        densities.reshape(-1), values.reshape(B * R * S, C), t_starts.reshape(-1), t_ends.reshape(-1), offsets,
        impl=impl, fn=fn
    )
    near, far = t_starts[..., 0].reshape(-1), t_ends[..., -1].reshape(-1)
    out = _finish(fn, acc, depth_sum, opacity, near, far, background, (B, R))
    if return_weights:
        out["weights"] = weights.reshape(B, R, S)
    return out


def _check_samples(fn: str, densities: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor) -> None:
    """Densities finite and >= 0, intervals finite with t_ends >= t_starts (a reversed one gave
    negative opacity): one device sync while all is well."""
    densities, t_starts, t_ends = densities.detach(), t_starts.detach(), t_ends.detach()
    intervals = torch.isfinite(t_starts) & torch.isfinite(t_ends) & (t_ends >= t_starts)
    if bool((torch.isfinite(densities) & (densities >= 0)).all() & intervals.all()):
        return
    check_finite(fn, "densities", densities, nonnegative=True)
    check_finite(fn, "t_starts", t_starts)
    check_finite(fn, "t_ends", t_ends)
    index = tuple((~intervals).nonzero()[0].tolist())
    raise ValueError(f"{fn}: argument 't_ends' expected values >= t_starts, got {t_ends[index].item()} < "
                     f"{t_starts[index].item()} at index {index}")


def composite_packed(
    densities: torch.Tensor,
    values: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    *,
    offsets: torch.Tensor | None = None,
    ray_ids: torch.Tensor | None = None,
    n_rays: int | None = None,
    background: torch.Tensor | float | None = None,
    return_weights: bool = False,
    check_values: bool = True,
    impl: str = "auto",
) -> dict[str, torch.Tensor]:
    """Composite packed samples: flat ``[N]`` samples, ray after ray, sorted by t within a ray.

    Give either ``offsets [R + 1]`` (CSR: ray r owns samples offsets[r]:offsets[r+1]) or
    ``ray_ids [N]`` (non-decreasing) with ``n_rays``. ``values`` is ``[N, C]``; the others
    are ``[N]``. Returns ``values [R, C]``, ``depth [R]``, ``opacity [R]`` (and ``weights
    [N]``); rays without samples get opacity 0, the background and depth 0.
    """
    fn = "render3d.volume.composite_packed"
    sizes = Sizes()
    check_tensor(fn, "densities", densities, ("N",), sizes=sizes)
    check_tensor(fn, "values", values, ("N", "C"), sizes=sizes, like=densities, like_name="densities")
    check_tensor(fn, "t_starts", t_starts, ("N",), sizes=sizes, like=densities, like_name="densities")
    check_tensor(fn, "t_ends", t_ends, ("N",), sizes=sizes, like=densities, like_name="densities")
    if check_values:
        _check_samples(fn, densities, t_starts, t_ends)
    offsets = _offsets(fn, offsets, ray_ids, n_rays, sizes["N"], densities.device)
    n = offsets.numel() - 1
    acc, depth_sum, opacity, weights = composite_op(densities, values, t_starts, t_ends, offsets, impl=impl, fn=fn)
    counts = offsets[1:] - offsets[:-1]
    nonempty = counts > 0
    first = offsets[:-1].clamp_max(max(sizes["N"] - 1, 0))
    last = (offsets[1:] - 1).clamp_min(0)
    if sizes["N"] > 0:
        near = torch.where(nonempty, t_starts[first], 0)
        far = torch.where(nonempty, t_ends[last], 0)
    else:
        near = far = densities.new_zeros(n)
    out = _finish(fn, acc, depth_sum, opacity, near, far, background, (n,))
    if return_weights:
        out["weights"] = weights
    return out


def _offsets(fn, offsets, ray_ids, n_rays, n_samples, device) -> torch.Tensor:
    if (offsets is None) == (ray_ids is None):
        given = "both" if offsets is not None else "neither"
        raise ValueError(f"{fn}: give exactly one of 'offsets' or 'ray_ids', got {given}")
    if offsets is not None:
        check_tensor(fn, "offsets", offsets, (None,), dtype=torch.int64, device=device)
        if offsets.numel() < 1:
            raise ValueError(f"{fn}: argument 'offsets' expected shape [R + 1] with R >= 0, got [0]")
        first, last = int(offsets[0]), int(offsets[-1])
        if first != 0 or last != n_samples or bool((offsets[1:] < offsets[:-1]).any()):
            raise ValueError(
                f"{fn}: argument 'offsets' expected non-decreasing values from 0 to N={n_samples}, "
                f"got first={first}, last={last}"
            )
        return offsets
    check_tensor(fn, "ray_ids", ray_ids, ("N",), dtype=torch.int64, device=device)
    if n_rays is None:
        raise ValueError(f"{fn}: argument 'n_rays' is required with 'ray_ids', got None")
    if n_samples and (bool((ray_ids[1:] < ray_ids[:-1]).any()) or int(ray_ids[0]) < 0 or int(ray_ids[-1]) >= n_rays):
        raise ValueError(f"{fn}: argument 'ray_ids' expected non-decreasing ids in [0, n_rays={n_rays})")
    return packed_offsets(ray_ids, n_rays)


def packed_offsets(ray_ids: torch.Tensor, n_rays: int) -> torch.Tensor:
    """CSR offsets ``[n_rays + 1]`` of non-decreasing ``ray_ids [N]``."""
    counts = torch.bincount(ray_ids, minlength=n_rays)
    return F.pad(torch.cumsum(counts, 0), (1, 0))


def _finish(fn, acc, depth_sum, opacity, near, far, background, batch_shape) -> dict[str, torch.Tensor]:
    safe = opacity.clamp_min(DEPTH_OPACITY_EPS)
    depth = torch.where(opacity > DEPTH_OPACITY_EPS, depth_sum / safe, far)
    depth = torch.minimum(torch.maximum(depth, near), far)
    values = acc
    if background is not None:
        bg = torch.as_tensor(background, dtype=acc.dtype, device=acc.device)
        try:
            bg = torch.broadcast_to(bg, (*batch_shape, acc.shape[-1])).reshape(acc.shape)
        except RuntimeError:
            raise ValueError(
                f"{fn}: argument 'background' expected a float, [C={acc.shape[-1]}] or a shape broadcastable to "
                f"{[*batch_shape, acc.shape[-1]]}, got {list(bg.shape)}"
            ) from None
        values = acc + (1 - opacity)[:, None] * bg
    C = acc.shape[-1]
    return {
        "values": values.reshape(*batch_shape, C),
        "depth": depth.reshape(batch_shape),
        "opacity": opacity.reshape(batch_shape),
    }


# --- density activations and alpha input ---------------------------------------------------

class _TruncExp(torch.autograd.Function):
    """exp(x) whose gradient uses exp(min(x, 15)) (instant-ngp's trunc_exp), so large raw
    densities cannot blow up the backward pass."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15))


DENSITY_ACTIVATIONS = ("relu", "softplus", "shifted_softplus", "trunc_exp")


def density_activation(raw: torch.Tensor, kind: str = "shifted_softplus") -> torch.Tensor:
    """Map raw network outputs to non-negative densities.

    ``relu`` (NeRF, VolumeGAN, DisCoScene); ``softplus``; ``shifted_softplus`` =
    softplus(raw - 1) (EG3D's MipRayMarcher); ``trunc_exp`` = exp with a clamped gradient
    (instant-ngp).
    """
    check_choice("render3d.volume.density_activation", "kind", kind, DENSITY_ACTIVATIONS)
    if kind == "relu":
        return F.relu(raw)
    if kind == "softplus":
        return F.softplus(raw)
    if kind == "shifted_softplus":
        return F.softplus(raw - 1)
    return _TruncExp.apply(raw)


def alpha_to_density(alphas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor) -> torch.Tensor:
    """Densities that give these per-interval opacities: sigma = -log(1 - alpha) / (t_end - t_start).

    For methods that predict alpha directly; alpha is clamped below 1 - 1e-6 (float32) so the
    density stays finite. Shapes: any, all three equal.
    """
    fn = "render3d.volume.alpha_to_density"
    sizes = Sizes()
    check_tensor(fn, "alphas", alphas, ("...",), dtype=FLOATING)
    check_tensor(fn, "t_starts", t_starts, tuple(alphas.shape), sizes=sizes, like=alphas, like_name="alphas")
    check_tensor(fn, "t_ends", t_ends, tuple(alphas.shape), sizes=sizes, like=alphas, like_name="alphas")
    limit = 1 - (1e-6 if alphas.dtype == torch.float32 else 1e-12)
    return -torch.log1p(-alphas.clamp(0, limit)) / (t_ends - t_starts)
