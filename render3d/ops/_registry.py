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
    if torch.is_grad_enabled():  # create_graph=True: the gradient will be differentiated again
        from .composite import composite_torch

        return _twin_backward(ctx, composite_torch, (sigmas, values, t_starts, t_ends, offsets),
                              (grad_acc, grad_depth_sum, grad_opacity, grad_weights))
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


def _twin_backward(ctx, twin, inputs: tuple, grad_outputs: tuple) -> tuple:
    """The gradients of a native op's inputs, as its backward returns them, recomputed
    through its PyTorch `twin` (same arguments, same outputs) with a graph of their own: the
    backward used under create_graph=True (gradient penalties such as path length), where
    the C++ backward, which has no backward itself, would give silently wrong second
    derivatives. Slower than the native backward; only runs when asked for."""
    wanted = [i for i, needed in enumerate(ctx.needs_input_grad) if needed]
    outputs = twin(*inputs)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs)
             if g is not None and o.is_floating_point() and o.requires_grad]
    found = torch.autograd.grad([o for o, _ in pairs], [inputs[i] for i in wanted], [g for _, g in pairs],
                                create_graph=True, allow_unused=True)
    grads = [None] * len(ctx.needs_input_grad)
    for i, g in zip(wanted, found):
        grads[i] = torch.zeros_like(inputs[i]) if g is None else g
    return tuple(grads)


_PROJECT_ARGS = ("means", "quats", "scales", "covars", "opacities", "viewmats", "intrinsics", "width", "height",
                 "near_plane", "far_plane", "eps2d", "alpha_min", "antialiased")


def _project_setup_context(ctx, inputs, output):
    radii, _, _, conics, compensations = output
    tensors = [t if isinstance(t, torch.Tensor) else None for t in inputs[:7]]
    ctx.optional = [t is None for t in tensors]
    ctx.save_for_backward(*[t for t in tensors if t is not None], radii, conics, compensations)
    ctx.scalars = inputs[7:]


def _project_backward(ctx, v_radii, v_means2d, v_depths, v_conics, v_compensations):
    saved = list(ctx.saved_tensors)
    radii, conics, compensations = saved[-3:]
    tensors, it = [], iter(saved[:-3])
    for missing in ctx.optional:
        tensors.append(None if missing else next(it))
    if torch.is_grad_enabled():  # create_graph=True: the gradient will be differentiated again
        from .splat import project_torch

        return _twin_backward(ctx, project_torch, (*tensors, *ctx.scalars),
                              (None, v_means2d, v_depths, v_conics, v_compensations))
    v_means, v_quats, v_scales, v_covars = torch.ops.render3d.project_bwd(
        *tensors, *ctx.scalars, radii, conics, compensations, v_means2d.contiguous(), v_depths.contiguous(),
        v_conics.contiguous(), v_compensations.contiguous(),
    )
    by_quat = tensors[1] is not None
    return (v_means, v_quats if by_quat else None, v_scales if by_quat else None, None if by_quat else v_covars,
            None, None, None, None, None, None, None, None, None, None)


def _raster_setup_context(ctx, inputs, output):
    _, transmittance, last = output
    ctx.save_for_backward(*inputs[:6], transmittance, last)
    ctx.scalars = inputs[6:]


def _raster_backward(ctx, v_acc, v_transmittance, v_last):
    means2d, conics, features, opacities, tile_offsets, ids, transmittance, last = ctx.saved_tensors
    if torch.is_grad_enabled():  # create_graph=True: the gradient will be differentiated again
        from .splat import raster_torch

        return _twin_backward(ctx, raster_torch, (means2d, conics, features, opacities, tile_offsets, ids,
                                                  *ctx.scalars), (v_acc, v_transmittance, None))
    grads = torch.ops.render3d.raster_bwd(
        v_acc.contiguous(), v_transmittance.contiguous(), means2d, conics, features, opacities, tile_offsets, ids,
        transmittance, last, *ctx.scalars,
    )
    return (*grads, None, None, None, None, None, None, None)


def register_all() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    lib = "render3d"

    torch.library.register_autograd(
        f"{lib}::composite_fwd", _composite_backward, setup_context=_composite_setup_context
    )

    torch.library.register_autograd(f"{lib}::project_fwd", _project_backward, setup_context=_project_setup_context)
    torch.library.register_autograd(f"{lib}::raster_fwd", _raster_backward, setup_context=_raster_setup_context)

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

    @torch.library.register_fake(f"{lib}::project_fwd")
    def _(means, quats, scales, covars, opacities, viewmats, intrinsics, width, height, near_plane, far_plane, eps2d,
          alpha_min, antialiased):
        B, N = means.shape[:2]
        return (means.new_empty((B, N, 2), dtype=torch.int32), means.new_empty((B, N, 2)), means.new_empty((B, N)),
                means.new_empty((B, N, 3)), means.new_empty((B, N)))

    @torch.library.register_fake(f"{lib}::project_bwd")
    def _(means, quats, scales, covars, opacities, viewmats, intrinsics, width, height, near_plane, far_plane, eps2d,
          alpha_min, antialiased, radii, conics, compensations, v_means2d, v_depths, v_conics, v_compensations):
        by_quat = quats is not None
        B, N = means.shape[:2]
        empty = means.new_empty((0,))
        return (means.new_empty((B, N, 3)), means.new_empty((B, N, 4)) if by_quat else empty,
                means.new_empty((B, N, 3)) if by_quat else empty, empty if by_quat else means.new_empty((B, N, 6)))

    @torch.library.register_fake(f"{lib}::raster_fwd")
    def _(means2d, conics, features, opacities, tile_offsets, ids, width, height, alpha_max, alpha_min,
          transmittance_eps):
        B, K = means2d.shape[0], features.shape[2]
        return (features.new_empty((B, height, width, K)), features.new_empty((B, height, width)),
                features.new_empty((B, height, width), dtype=torch.int64))

    @torch.library.register_fake(f"{lib}::raster_bwd")
    def _(v_acc, v_transmittance, means2d, conics, features, opacities, tile_offsets, ids, transmittance, last, width,
          height, alpha_max, alpha_min, transmittance_eps):
        return (torch.empty_like(means2d), torch.empty_like(conics), torch.empty_like(features),
                torch.empty_like(opacities))
