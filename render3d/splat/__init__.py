"""Gaussian splatting: rasterization (native CPU and CUDA kernels with PyTorch twins),
spherical-harmonic colour, and the 3DGS PLY and `.splat` files."""

from .io import load_ply, load_splat, save_ply, save_splat
from .rasterize import MODES, RADIUS_MODES, rasterize
from .sh import rgb_to_sh, sh_basis, sh_to_color

__all__ = [
    "MODES",
    "RADIUS_MODES",
    "load_ply",
    "load_splat",
    "rasterize",
    "rgb_to_sh",
    "save_ply",
    "save_splat",
    "sh_basis",
    "sh_to_color",
]
