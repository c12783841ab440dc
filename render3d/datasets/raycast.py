"""Render triangle meshes by ray casting with open3d, independently of render3d's renderers.

One ray per sub-pixel through `Cameras.generate_rays` (so pixel centres and the OpenCV
convention are the cameras' own), hit by open3d's `RaycastingScene` (Embree). Shading is
Lambertian under one directional light with hard shadows (shadow rays through open3d too)
plus an ambient term, so colours depend on the surface and the light, not on the viewer.
"""

from __future__ import annotations

import numpy as np
import torch

from render3d.cameras import Cameras
from render3d.datasets.procedural import ObjectMesh

# Light: direction towards the light (world, normalized on use), the ambient share, and
# the diffuse share (ambient + diffuse = 1: a lit surface facing the light shows its albedo).
LIGHT_DIRECTION = (0.35, 1.0, 0.55)
AMBIENT, DIFFUSE = 0.35, 0.65
# Floor checker: cell size (world units) and the two albedos.
CHECKER_CELL = 0.25
CHECKER_COLORS = ((0.78, 0.78, 0.74), (0.5, 0.52, 0.56))
# Shadow rays start this far (world units) off the surface along its face normal.
SHADOW_OFFSET = 1e-3
# At most this many rays are cast at once (bounds memory at 256 px with supersampling).
RAYS_PER_BATCH = 1 << 20


def _checker(points: np.ndarray) -> np.ndarray:
    parity = (np.floor(points[:, 0] / CHECKER_CELL) + np.floor(points[:, 2] / CHECKER_CELL)) % 2
    a, b = np.array(CHECKER_COLORS)
    return np.where(parity[:, None] > 0, b, a)


def _subpixel_grid(width: int, height: int, supersample: int) -> torch.Tensor:
    """[H*s * W*s, 2] sub-pixel centres (u + (i + 0.5)/s, v + (j + 0.5)/s), row-major over
    the supersampled image; for odd s the middle sub-pixel is the pixel centre."""
    offsets = (torch.arange(supersample, dtype=torch.float64) + 0.5) / supersample
    u = (torch.arange(width, dtype=torch.float64)[:, None] + offsets).reshape(-1)
    v = (torch.arange(height, dtype=torch.float64)[:, None] + offsets).reshape(-1)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack([uu, vv], -1).reshape(-1, 2)


class MeshRaycaster:
    """Ray-cast a list of meshes. `checker`: indices of meshes coloured by the floor checker
    instead of their vertex colours. Mesh i has geometry id i in open3d's scene. `threads`:
    open3d's threads per cast (0: its own choice)."""

    def __init__(self, meshes: list[ObjectMesh], checker: tuple[int, ...] = (), threads: int = 0) -> None:
        import open3d as o3d
        import open3d.core as o3c

        self.meshes = meshes
        self.checker = set(checker)
        self.threads = threads
        self.scene = o3d.t.geometry.RaycastingScene()
        for mesh in meshes:
            self.scene.add_triangles(o3c.Tensor(mesh.vertices.astype(np.float32)),
                                     o3c.Tensor(mesh.faces.astype(np.uint32)))
        self._tensor = o3c.Tensor

    def _cast(self, rays: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, list] = {}
        for start in range(0, len(rays), RAYS_PER_BATCH):
            hit = self.scene.cast_rays(self._tensor(rays[start:start + RAYS_PER_BATCH]), nthreads=self.threads)
            for key in ("t_hit", "geometry_ids", "primitive_ids", "primitive_uvs", "primitive_normals"):
                out.setdefault(key, []).append(hit[key].numpy())
        return {k: np.concatenate(v) for k, v in out.items()}

    def _occluded(self, rays: np.ndarray) -> np.ndarray:
        return np.concatenate([self.scene.test_occlusions(self._tensor(rays[s:s + RAYS_PER_BATCH]),
                                                          nthreads=self.threads).numpy()
                               for s in range(0, len(rays), RAYS_PER_BATCH)])

    def render(self, cameras: Cameras, *, supersample: int = 3, background=(1.0, 1.0, 1.0),
               light_direction=LIGHT_DIRECTION) -> dict[str, np.ndarray]:
        """Render every camera. supersample: odd s; RGB averages s x s rays per pixel, the
        geometry comes from the middle ray, through the pixel centre.

        Returns numpy arrays, V = len(cameras): ``rgb`` float32 [V, H, W, 3] in [0, 1] (over
        `background`), ``depth`` float32 [V, H, W] (distance along the unit ray from the camera
        centre, world units; 0 where nothing is hit), ``normals`` float32 [V, H, W, 3] (world,
        unit; 0 where nothing is hit), ``mask`` bool [V, H, W], ``mesh`` int16 [V, H, W] (index
        of the hit mesh, -1 for background).
        """
        if supersample < 1 or supersample % 2 == 0:
            raise ValueError(f"MeshRaycaster.render: argument 'supersample' expected an odd positive int, "
                             f"got {supersample!r}")
        cameras = cameras.to("cpu", torch.float64)
        s, width, height = supersample, cameras.width, cameras.height
        uv = _subpixel_grid(width, height, s)
        light = np.asarray(light_direction, dtype=np.float64)
        light = light / np.linalg.norm(light)
        results = {k: [] for k in ("rgb", "depth", "normals", "mask", "mesh")}
        for i in range(len(cameras)):
            origins, directions = cameras[i].generate_rays(uv[None])
            origins, directions = origins[0].numpy(), directions[0].numpy()
            hit = self._cast(np.concatenate([origins, directions], 1).astype(np.float32))
            mask = np.isfinite(hit["t_hit"])
            ids = np.where(mask, hit["geometry_ids"], 0).astype(np.int64)
            points = origins + hit["t_hit"][:, None].astype(np.float64) * directions
            normals, albedo = np.zeros_like(points), np.zeros_like(points)
            for g, mesh in enumerate(self.meshes):
                sel = np.flatnonzero(mask & (ids == g))
                triangles = mesh.faces[hit["primitive_ids"][sel]]
                bu, bv = hit["primitive_uvs"][sel, 0:1], hit["primitive_uvs"][sel, 1:2]
                weights = (1 - bu - bv, bu, bv)  # open3d: point = (1-u-v) v0 + u v1 + v v2

                def interpolate(values: np.ndarray) -> np.ndarray:
                    return sum(w * values[triangles[:, k]] for k, w in enumerate(weights))

                normals[sel] = interpolate(mesh.normals) if mesh.smooth else hit["primitive_normals"][sel]
                albedo[sel] = _checker(points[sel]) if g in self.checker else interpolate(mesh.colors)
            normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
            hits = np.flatnonzero(mask)
            shadow_origins = points[hits] + SHADOW_OFFSET * hit["primitive_normals"][hits]
            shadow_rays = np.concatenate([shadow_origins, np.broadcast_to(light, shadow_origins.shape)], 1)
            lit = ~self._occluded(shadow_rays.astype(np.float32))
            shade = AMBIENT + DIFFUSE * np.clip(normals[hits] @ light, 0, None) * lit
            rgb = np.broadcast_to(np.asarray(background, dtype=np.float64), points.shape).copy()
            rgb[hits] = np.clip(albedo[hits] * shade[:, None], 0, 1)
            rgb = rgb.reshape(height, s, width, s, 3).mean((1, 3))
            centre = (slice(None), s // 2, slice(None), s // 2)
            results["rgb"].append(rgb.astype(np.float32))
            results["depth"].append(np.where(mask, hit["t_hit"], 0).reshape(height, s, width, s)[centre])
            results["normals"].append(normals.reshape(height, s, width, s, 3)[centre].astype(np.float32))
            results["mask"].append(mask.reshape(height, s, width, s)[centre])
            results["mesh"].append(np.where(mask, ids, -1).reshape(height, s, width, s)[centre].astype(np.int16))
        return {k: np.stack(v) for k, v in results.items()}
