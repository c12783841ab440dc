"""Real spherical harmonics up to degree 3, as 3DGS evaluates view-dependent colour.

colour = max(0, 0.5 + sum_l sum_m c_lm Y_lm(d)) with d the unit direction from the camera to
the Gaussian; coefficients ``[..., K, 3]`` with K = (degree + 1)^2, in the order 3DGS stores
them (f_dc is coefficient 0).
"""

from __future__ import annotations

import torch

# Normalisation constants of the real SH basis (the values 3DGS and gsplat use).
SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
         1.445305721320277, -0.5900435899266435)


def sh_basis(degree: int, directions: torch.Tensor) -> torch.Tensor:
    """The first (degree + 1)^2 basis functions at unit ``directions [..., 3]`` -> ``[..., K]``."""
    x, y, z = directions.unbind(-1)
    terms = [torch.full_like(x, SH_C0)]
    if degree > 0:
        terms += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree > 1:
        xx, yy, zz = x * x, y * y, z * z
        terms += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * x * z,
                  SH_C2[4] * (xx - yy)]
    if degree > 2:
        terms += [SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * x * y * z, SH_C3[2] * y * (4 * zz - xx - yy),
                  SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
                  SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy)]
    return torch.stack(terms, dim=-1)


def sh_to_color(degree: int, coefficients: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Colours ``[..., 3]`` from SH ``coefficients [..., K, 3]`` (K >= (degree+1)^2; the first
    (degree+1)^2 are used) seen along ``directions [..., 3]`` (normalised here)."""
    n = (degree + 1) ** 2
    basis = sh_basis(degree, torch.nn.functional.normalize(directions, dim=-1))
    return torch.clamp_min((basis[..., None] * coefficients[..., :n, :]).sum(-2) + 0.5, 0.0)


def rgb_to_sh(rgb) -> torch.Tensor:
    """The degree-0 coefficient that renders as `rgb` (3DGS's RGB2SH): float RGB in [0, 1], a
    tensor or anything `torch.as_tensor` takes. Integer colours are refused: 0..255 values
    would be taken as [0, 1] ones and render white."""
    try:
        rgb = torch.as_tensor(rgb)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"rgb_to_sh: argument 'rgb' expected float RGB in [0, 1], got {rgb!r}") from None
    if not rgb.is_floating_point():
        raise ValueError(f"rgb_to_sh: argument 'rgb' expected float RGB in [0, 1], got dtype "
                         f"{str(rgb.dtype).removeprefix('torch.')} (divide 0..255 colours by 255)")
    return (rgb - 0.5) / SH_C0
