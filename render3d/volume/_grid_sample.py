"""Bilinear / trilinear ``F.grid_sample`` that can be differentiated twice on every torch.

Torch 2.11 has no derivative of ``grid_sampler_2d_backward`` / ``grid_sampler_3d_backward``
(2.13 has): a gradient penalty through a tri-plane or feature-volume field
(path length through VolumeGAN's volume, or a penalty on autograd normals) failed there with
"derivative for aten::grid_sampler_3d_backward is not implemented". The GPU machines we
benchmark on hold torch 2.11.

`grid_sample` keeps torch's own op wherever torch can differentiate it twice, or where no
gradient is being recorded. Elsewhere it wraps the op in `_GridSample`. Its forward and its
first-order backward are torch's kernels. Under ``create_graph=True`` its backward recomputes
the sample through `grid_sample_torch`, which gathers the 4 or 8 corners and weighs them, so
autograd differentiates it to any order. The native ops do the same with their twins (see
`render3d.ops._registry`).
"""

from __future__ import annotations

import functools
import itertools

import torch
import torch.nn.functional as F

_PADDING_CODES = {"zeros": 0, "border": 1, "reflection": 2}   # aten's GridSamplerPadding


def grid_sample(input: torch.Tensor, grid: torch.Tensor, padding: str) -> torch.Tensor:
    """``F.grid_sample(input, grid, mode="bilinear", padding_mode=padding,
    align_corners=False)`` for 4-D and 5-D `input`, twice differentiable (see the module)."""
    if (not torch.is_grad_enabled() or not (input.requires_grad or grid.requires_grad)
            or native_double_backward(input.dim())):
        return F.grid_sample(input, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    return _GridSample.apply(input, grid, padding)


@functools.cache
def native_double_backward(dims: int) -> bool:
    """Whether this torch differentiates the backward of 4-D (`dims` 4) or 5-D grid sampling."""
    shape = (1, 1) + (2,) * (dims - 2)
    # fixed values, never torch.rand: the probe runs at some step of a training run, and a
    # draw from the global generator there would break resuming bit-exactly
    volume = torch.arange(2 ** (dims - 2), dtype=torch.float64).reshape(shape).requires_grad_()
    grid = torch.full((1,) + (1,) * (dims - 2) + (dims - 2,), 0.1, dtype=torch.float64, requires_grad=True)
    try:
        with torch.enable_grad():
            out = F.grid_sample(volume, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            (slope,) = torch.autograd.grad(out.sum(), grid, create_graph=True)
            torch.autograd.grad(slope.sum(), volume)
    except RuntimeError as error:
        if "not implemented" not in str(error):
            raise
        return False
    return True


class _GridSample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input, grid, padding):
        ctx.save_for_backward(input, grid)
        ctx.padding = padding
        return F.grid_sample(input, grid, mode="bilinear", padding_mode=padding, align_corners=False)

    @staticmethod
    def backward(ctx, grad):
        input, grid = ctx.saved_tensors
        needs = list(ctx.needs_input_grad[:2])
        if torch.is_grad_enabled():   # create_graph=True: this gradient will be differentiated again
            from render3d.ops._registry import _twin_backward

            return _twin_backward(ctx, lambda *args: (grid_sample_torch(*args),), (input, grid, ctx.padding), (grad,))
        aten = torch.ops.aten
        backward = aten.grid_sampler_3d_backward if input.dim() == 5 else aten.grid_sampler_2d_backward
        grad_input, grad_grid = backward(grad.contiguous(), input, grid, 0, _PADDING_CODES[ctx.padding], False, needs)
        return grad_input if needs[0] else None, grad_grid if needs[1] else None, None


def grid_sample_torch(input: torch.Tensor, grid: torch.Tensor, padding: str) -> torch.Tensor:
    """The same sampling from gathers and weights, as aten computes it: source index
    ``((g + 1) * size - 1) / 2`` per axis (grid x <-> the last axis of `input`), padded,
    and corners outside the grid reading 0 in every padding mode."""
    dims = grid.shape[-1]
    N, C = input.shape[:2]
    sizes = input.shape[2:][::-1]                      # (W, H) or (W, H, D): the grid's x, y, z
    coords = grid.reshape(N, -1, dims)
    axes, stride = [], 1
    for k, size in enumerate(sizes):
        index = ((coords[..., k] + 1) * size - 1) / 2
        if padding == "reflection":
            index = _reflect(index, size)
        if padding != "zeros":
            index = index.clamp(0, size - 1)
        low = torch.floor(index)
        axes.append((low.long(), index - low, size, stride))
        stride *= size
    flat = input.reshape(N, C, -1)
    out = 0
    for corner in itertools.product((0, 1), repeat=dims):
        offset, weight, inside = 0, 1, True
        for (low, frac, size, step), upper in zip(axes, corner):
            at = low + upper
            inside = inside & (at >= 0) & (at < size)
            offset = offset + at.clamp(0, size - 1) * step
            weight = weight * (frac if upper else 1 - frac)
        values = flat.gather(2, offset[:, None, :].expand(N, C, offset.shape[1]))
        out = out + values * (weight * inside)[:, None, :]
    return out.reshape(N, C, *grid.shape[1:-1])


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """aten's reflect_coordinates for align_corners=False: mirror about -0.5 and size - 0.5."""
    shifted = (index + 0.5).abs()
    extra = torch.fmod(shifted, size)
    even = torch.floor(shifted / size) % 2 == 0
    return torch.where(even, extra - 0.5, size - extra - 0.5)
