"""StyleGAN2's mapping network z (and an optional condition c) -> w, with the running average
of w that truncation pulls towards."""

from __future__ import annotations

import torch
from torch import nn

from render3d._checks import check_number, check_positive, check_tensor

from .layers import FullyConnected


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` so its mean square along `dim` is 1 (StyleGAN's pixel norm of z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """``z [B, z_dim]`` (and ``c [B, c_dim]`` if c_dim > 0) -> ``ws [B, num_ws, w_dim]``; with
    z_dim = 0, c alone (EG3D's label embedding in the discriminator).

    `num_layers` equalized-lr FC layers of width `w_dim` with leaky ReLU, all slowed by
    `lr_mul` (0.01 in StyleGAN2, so w moves slowly); c is embedded by one FC layer and
    concatenated to z, both normalised. `w_avg` tracks the mean w with decay `w_avg_beta`
    when `update_w_avg` is set (training); truncation ``w_avg + psi (w - w_avg)`` applies to
    the first `truncation_cutoff` ws (all if None).
    """

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, *, c_dim: int = 0, num_layers: int = 8,
                 lr_mul: float = 0.01, w_avg_beta: float = 0.995) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnected(c_dim, w_dim) if c_dim > 0 else None
        if z_dim + c_dim == 0:
            raise ValueError("MappingNetwork: arguments 'z_dim', 'c_dim' expected at least one positive, got 0 and 0")
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnected(a, b, activation="lrelu", lr_mul=lr_mul) for a, b in zip(features[:-1], features[1:])
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, *, truncation: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = False) -> torch.Tensor:
        fn = "MappingNetwork"
        check_number(fn, "truncation", truncation)
        if truncation_cutoff is not None:
            check_positive(fn, "truncation_cutoff", truncation_cutoff, allow_zero=True, integer=True)
        parts = []
        if self.z_dim > 0:
            check_tensor(fn, "z", z, (None, self.z_dim))
            parts.append(normalize_2nd_moment(z))
        if self.embed is not None:
            if c is None:
                raise ValueError(f"{fn}: argument 'c' expected [B, {self.c_dim}] (c_dim > 0), got None")
            check_tensor(fn, "c", c, (None if z is None else len(z), self.c_dim))
            parts.append(normalize_2nd_moment(self.embed(c)))
        x = torch.cat(parts, dim=1)
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        ws = x[:, None].repeat(1, self.num_ws, 1)
        if truncation != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            psi, head = float(truncation), ws[:, :cutoff]
            # A psi past the dtype's range is torch's overflow error inside lerp; one that only
            # carries w past it gives NaN images. A w that is not finite already is not psi's doing.
            if abs(psi) <= torch.finfo(ws.dtype).max:
                truncated = self.w_avg.lerp(head, psi)
                overflow = not bool(torch.isfinite(truncated).all())
            else:
                truncated, overflow = head, head.numel() > 0
            if overflow and bool(torch.isfinite(head).all()):
                raise ValueError(f"{fn}: argument 'truncation' expected a number small enough for "
                                 f"w_avg + psi (w - w_avg) to stay finite in {ws.dtype}, got {truncation!r}")
            ws[:, :cutoff] = truncated
        return ws
