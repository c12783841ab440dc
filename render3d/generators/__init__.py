"""3D generators, registered by name in `render3d.registry.GENERATORS`.

Each is an ``nn.Module`` built from its typed config with the interface of DESIGN.md:
``mapping(z, c=None, truncation=1.0) -> ws``, ``synthesis(ws, cameras, resolution) -> dict``
(``image [B, 3, H, W]`` in [-1, 1], and ``image_raw``, ``depth``, ``alpha``),
``density(points, ws) -> sigma`` and ``color(points, ws) -> rgb``.
"""

from render3d.registry import GENERATORS

from .volumegan import VolumeGAN, VolumeGANConfig

__all__ = ["GENERATORS", "VolumeGAN", "VolumeGANConfig"]
