"""Filtered 2D resampling (StyleGAN2's upfirdn2d, in PyTorch): up-sample by zero insertion,
pad, convolve with a separable low-pass FIR filter, down-sample by striding.

The default filter is StyleGAN2's [1, 3, 3, 1] (outer product, normalised to sum 1), which
keeps up- and down-sampling from aliasing; up-sampling multiplies by up^2 so that a constant
image stays the same constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_FILTER = (1.0, 3.0, 3.0, 1.0)


def make_filter(taps=DEFAULT_FILTER) -> torch.Tensor:
    """2D filter ``[k, k]`` from 1D taps (outer product), summing to 1."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f[:, None] * f[None, :]
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, *, up: int = 1, down: int = 1, pad=(0, 0, 0, 0),
              gain: float = 1.0) -> torch.Tensor:
    """``x [B, C, H, W]`` -> up-sampled by `up`, padded by ``(left, right, top, bottom)``,
    filtered by ``f [k, k]`` (times `gain`), down-sampled by `down`."""
    B, C, H, W = x.shape
    if up > 1:
        x = x.reshape(B, C, H, 1, W, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(B, C, H * up, W * up)
    x = F.pad(x, list(pad))
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(C, 1, 1, 1)
    x = F.conv2d(x, weight, groups=C)
    return x[:, :, ::down, ::down] if down > 1 else x


def upsample2d(x: torch.Tensor, f: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """``[B, C, H, W] -> [B, C, factor H, factor W]``, low-pass filtered."""
    k = f.shape[-1]
    pad = ((k + factor - 1) // 2, (k - factor) // 2)
    return upfirdn2d(x, f, up=factor, pad=(*pad, *pad), gain=factor ** 2)


def downsample2d(x: torch.Tensor, f: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """``[B, C, H, W] -> [B, C, H / factor, W / factor]``, low-pass filtered."""
    k = f.shape[-1]
    pad = ((k - factor + 1) // 2, (k - factor) // 2)
    return upfirdn2d(x, f, down=factor, pad=(*pad, *pad))
