"""Multi-view renders of a scene: still views (colour, depth, normals, opacity) with coarse +
importance sampling, and orbit videos marched through an occupancy grid."""

from __future__ import annotations

import torch
from tqdm import tqdm

from ..cameras import Cameras
from ..rays import OccupancyGrid
from .renderer import VolumeRenderer
from .scenes import Scene

NEAR, FAR = 0.1, 10.0
CHUNK = 1 << 14  # rays per chunk: keeps a 256^2 view with normals within a few hundred MB


def _check(fn: str, scene, cameras) -> None:
    if not isinstance(scene, Scene):
        raise ValueError(f"{fn}: argument 'scene' expected a render3d.volume.scenes.Scene, got {type(scene).__name__}")
    if not isinstance(cameras, Cameras):
        raise ValueError(f"{fn}: argument 'cameras' expected render3d.cameras.Cameras, got {type(cameras).__name__}")


def render_views(scene: Scene, cameras: Cameras, *, n_coarse: int = 64, n_fine: int = 64, impl: str = "auto",
                 progress: bool = False) -> dict[str, torch.Tensor]:
    """Render each camera (one at a time, so memory does not grow with their number).

    Returns ``image [B, 3, H, W]`` (on the scene's background), ``depth [B, 1, H, W]``
    (distance along the ray, world units), ``alpha [B, 1, H, W]`` and ``normals [B, 3, H, W]``
    (world space, unit length where alpha > 0).
    """
    _check("render3d.volume.render_views", scene, cameras)
    renderer = VolumeRenderer(n_coarse=n_coarse, n_fine=n_fine, near=NEAR, far=FAR, bbox=scene.bbox,
                              background=scene.background, chunk=CHUNK, impl=impl).eval()
    rendered = []
    with torch.no_grad():
        for i in tqdm(range(len(cameras)), desc="views", unit="view", disable=not progress):
            rendered.append(renderer(scene.field, cameras[i]))
    return {key: torch.cat([r[key] for r in rendered]) for key in rendered[0]}


def render_orbit(scene: Scene, cameras: Cameras, *, grid_resolution: int = 128, impl: str = "auto",
                 progress: bool = False) -> torch.Tensor:
    """Colour frames ``[T, 3, H, W]``, one per camera, marched through an occupancy grid of
    the scene's density (built once; steps of 1/500 of the box's largest side)."""
    _check("render3d.volume.render_orbit", scene, cameras)
    lo, hi = torch.tensor(scene.bbox[0]), torch.tensor(scene.bbox[1])
    step = float((hi - lo).max()) / 500
    occupancy = OccupancyGrid(scene.bbox, resolution=grid_resolution)
    occupancy.build(scene.field.density, step_size=step, generator=torch.Generator().manual_seed(0))
    marcher = VolumeRenderer(near=NEAR, far=FAR, bbox=scene.bbox, background=scene.background,
                             occupancy_grid=occupancy, step_size=step, chunk=CHUNK, impl=impl).eval()
    frames = []
    with torch.no_grad():
        for i in tqdm(range(len(cameras)), desc="orbit", unit="frame", disable=not progress):
            frames.append(marcher(scene.field, cameras[i], normals=False)["image"])
    return torch.cat(frames)
