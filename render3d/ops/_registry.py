"""Python-side registration of the native ops, run once after the library loads: backward
formulas (one per op, shared by the CPU and CUDA implementations) and fake implementations
(shapes only, for torch.compile and torch.library.opcheck)."""

from __future__ import annotations

import torch

_registered = False


def _composite_setup_context(ctx, inputs, output):
    sigmas, values, t_starts, t_ends, offsets = inputs
    weights = output[3]
    ctx.save_for_backward(sigmas, values, t_starts, t_ends, offsets, weights)


def _composite_backward(ctx, grad_acc, grad_depth_sum, grad_opacity, grad_weights):
    sigmas, values, t_starts, t_ends, offsets, weights = ctx.saved_tensors
    grads = torch.ops.render3d.composite_bwd(
        grad_acc.contiguous(),
        grad_depth_sum.contiguous(),
        grad_opacity.contiguous(),
        None if grad_weights is None else grad_weights.contiguous(),
        sigmas,
        values,
        t_starts,
        t_ends,
        offsets,
        weights,
        ctx.needs_input_grad[1],
        ctx.needs_input_grad[2] or ctx.needs_input_grad[3],
    )
    grad_sigmas, grad_values, grad_t_starts, grad_t_ends = grads
    if not ctx.needs_input_grad[1]:
        grad_values = None
    if not (ctx.needs_input_grad[2] or ctx.needs_input_grad[3]):
        grad_t_starts = grad_t_ends = None
    return grad_sigmas, grad_values, grad_t_starts, grad_t_ends, None


def register_all() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    lib = "render3d"

    torch.library.register_autograd(
        f"{lib}::composite_fwd", _composite_backward, setup_context=_composite_setup_context
    )

    @torch.library.register_fake(f"{lib}::composite_fwd")
    def _(sigmas, values, t_starts, t_ends, offsets):
        n_rays = offsets.shape[0] - 1
        return (
            values.new_empty((n_rays, values.shape[1])),
            sigmas.new_empty((n_rays,)),
            sigmas.new_empty((n_rays,)),
            sigmas.new_empty(sigmas.shape),
        )

    @torch.library.register_fake(f"{lib}::composite_bwd")
    def _(grad_acc, grad_depth_sum, grad_opacity, grad_weights, sigmas, values, t_starts, t_ends, offsets, weights,
          values_grad, t_grads):
        return (
            torch.empty_like(sigmas),
            torch.empty_like(values) if values_grad else values.new_empty((0,)),
            torch.empty_like(t_starts) if t_grads else t_starts.new_empty((0,)),
            torch.empty_like(t_ends) if t_grads else t_ends.new_empty((0,)),
        )

    @torch.library.register_fake(f"{lib}::sample_pdf")
    def _(bins, weights, u):
        return u.new_empty(u.shape)

    @torch.library.register_fake(f"{lib}::occupancy_march")
    def _(origins, directions, t_near, t_far, bitfield, center, half, resolution, step_size, cone_angle, max_step,
          max_samples):
        n = torch.library.get_ctx().new_dynamic_size()
        return (
            t_near.new_empty((origins.shape[0] + 1,), dtype=torch.int64),
            t_near.new_empty((n,), dtype=torch.int64),
            t_near.new_empty((n,)),
            t_near.new_empty((n,)),
        )
