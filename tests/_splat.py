"""Shared pieces of the splat tests: a random scene of Gaussians in front of a few cameras,
the public entry called with its cameras, the projection op's arguments and a weighted loss."""

import torch

from render3d.cameras import Cameras
from render3d.splat import rasterize


def scene(B=2, N=60, seed=0, dtype=torch.float64, spread=0.8, size=(40, 30)):
    """Random Gaussians in front of B look-at cameras, including some behind, off-screen and
    near the clamp (so every branch runs)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(B, N, 3, generator=g, dtype=dtype) * spread
    means[:, :3] = torch.tensor([[0.0, 0.0, 5.0], [4.0, 0.0, 0.0], [0.0, 0.0, -9.0]], dtype=dtype)  # behind / aside
    quats = torch.randn(B, N, 4, generator=g, dtype=dtype)
    scales = torch.rand(B, N, 3, generator=g, dtype=dtype) * 0.15 + 0.01
    opacities = torch.rand(B, N, generator=g, dtype=dtype) * 0.9 + 0.05
    features = torch.rand(B, N, 3, generator=g, dtype=dtype)
    eyes = torch.tensor([[0.3, 0.2, -3.0], [-2.5, 0.8, -1.5], [1.0, -1.0, 2.5]], dtype=dtype)[:B]
    cameras = Cameras.look_at(eyes, torch.zeros(B, 3, dtype=dtype), width=size[0], height=size[1], fov_degrees=55)
    return means, quats, scales, opacities, features, cameras


def render(means, quats, scales, opacities, features, cameras, **kwargs):
    return rasterize(means, quats, scales, opacities, features, cameras.cam2world, cameras.intrinsics, cameras.width,
                     cameras.height, **kwargs)


def project_args(means, quats, scales, opacities, cameras, antialiased=False, covars=None, opacity_radius=False):
    viewmats = cameras.world2cam
    k = cameras.intrinsics
    pixel_k = torch.stack([k[:, 0, 0] * cameras.width, k[:, 1, 1] * cameras.height, k[:, 0, 2] * cameras.width,
                           k[:, 1, 2] * cameras.height], -1)
    return (means, None if covars is not None else quats, None if covars is not None else scales, covars,
            opacities if opacity_radius else None, viewmats.contiguous(), pixel_k.contiguous(), cameras.width,
            cameras.height, 0.01, 1e10, 0.3, 1 / 255, antialiased)


def loss_weights(outputs, seed=3):
    g = torch.Generator().manual_seed(seed)
    total = 0
    for out in outputs:
        if out.is_floating_point():
            total = total + (out * torch.rand(out.shape, generator=g, dtype=out.dtype).to(out.device)).sum()
    return total
