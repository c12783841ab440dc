"""Inverse-CDF sampling along rays: the native op and its PyTorch twin.

Both take bin edges ``[R, K+1]``, non-negative weights ``[R, K]`` and CDF levels ``u [R, n]``
and return sample positions ``[R, n]`` (see cuda/sample_pdf/sample_pdf.h). A ray whose
weights are all zero samples its bins uniformly. No gradient flows (the samples are
positions to evaluate, as in NeRF and EG3D). Public entry: `render3d.rays.importance_sample`.
"""

from __future__ import annotations

import torch

from ._dispatch import use_native


def sample_pdf_torch(bins: torch.Tensor, weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    n_bins = weights.shape[-1]
    total = weights.sum(-1, keepdim=True)
    uniform = torch.arange(1, n_bins + 1, dtype=weights.dtype, device=weights.device) / n_bins
    tail = torch.where(total > 0, torch.cumsum(weights, -1) / torch.where(total > 0, total, 1), uniform)
    cdf = torch.cat([torch.zeros_like(total), tail[..., :-1], torch.ones_like(total)], dim=-1)
    index = (torch.searchsorted(cdf, u.contiguous(), right=True) - 1).clamp(0, n_bins - 1)
    lower = cdf.gather(-1, index)
    denom = cdf.gather(-1, index + 1) - lower
    frac = torch.where(denom > 0, (u - lower) / torch.where(denom > 0, denom, 1), 0)
    left = bins.gather(-1, index)
    return left + frac * (bins.gather(-1, index + 1) - left)


def sample_pdf_op(
    bins: torch.Tensor, weights: torch.Tensor, u: torch.Tensor, *, impl: str = "auto", fn: str
) -> torch.Tensor:
    """Unchecked dispatch between the native op and the twin (callers have checked shapes)."""
    with torch.no_grad():
        if use_native(fn, impl, weights.device):
            return torch.ops.render3d.sample_pdf(bins.contiguous(), weights.contiguous(), u.contiguous())
        return sample_pdf_torch(bins, weights, u)
