"""Volume compositing over packed samples: the native op and its PyTorch twin.

Both take flat samples grouped by ray with CSR offsets and return
``(acc [R, C], depth_sum [R], opacity [R], weights [N])``; see cuda/composite/composite.h
for the maths. Public, checked entry points are in `render3d.volume`.
"""

from __future__ import annotations

import torch

from ._dispatch import use_native


def composite_torch(
    sigmas: torch.Tensor,
    values: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    offsets: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """PyTorch twin of ``render3d::composite_fwd``, written the textbook way:
    w_i = exp(-sum_{k<i} tau_k) * (1 - exp(-tau_i)). Autograd gives its backward."""
    n_rays = offsets.numel() - 1
    counts = offsets[1:] - offsets[:-1]
    ray_ids = torch.repeat_interleave(torch.arange(n_rays, device=sigmas.device), counts)
    position = torch.arange(sigmas.numel(), device=sigmas.device) - offsets[:-1][ray_ids]
    longest = int(counts.max()) if n_rays > 0 and sigmas.numel() > 0 else 0

    tau = sigmas * (t_ends - t_starts)
    dense_tau = tau.new_zeros(n_rays, longest + 1).index_put((ray_ids, position + 1), tau)
    exclusive = torch.cumsum(dense_tau, dim=1)[:, :-1]  # sum of tau before each sample
    transmittance = torch.exp(-exclusive[ray_ids, position])
    weights = transmittance * -torch.expm1(-tau)

    acc = values.new_zeros(n_rays, values.shape[1]).index_add(0, ray_ids, weights[:, None] * values)
    midpoints = 0.5 * (t_starts + t_ends)
    depth_sum = sigmas.new_zeros(n_rays).index_add(0, ray_ids, weights * midpoints)
    opacity = sigmas.new_zeros(n_rays).index_add(0, ray_ids, weights)
    return acc, depth_sum, opacity, weights


def composite_op(
    sigmas: torch.Tensor,
    values: torch.Tensor,
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    offsets: torch.Tensor,
    *,
    impl: str = "auto",
    fn: str = "render3d.volume.composite",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unchecked dispatch between the native op and the twin (callers have checked shapes)."""
    if use_native(fn, impl, sigmas.device):
        return torch.ops.render3d.composite_fwd(
            sigmas.contiguous(), values.contiguous(), t_starts.contiguous(), t_ends.contiguous(), offsets.contiguous()
        )
    return composite_torch(sigmas, values, t_starts, t_ends, offsets)
