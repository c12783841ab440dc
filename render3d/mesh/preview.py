"""Pictures of a mesh without a GPU: open3d's ray casting (Embree), shaded by normals and
vertex colours; on a CUDA machine with nvdiffrast installed, its rasterizer instead.

Both backends find, for every pixel (``supersample`` x ``supersample`` samples each), the
surface point seen, its smooth normal (vertex normals interpolated) and colour (vertex
colours interpolated, grey without them); the same shading turns those into pictures, so
the backends differ only in who finds the visible triangle. Shading: ambient plus a
Lambertian key light from above-left of the camera, both faces lit (normals are flipped to
face the viewer). Outputs match `render3d.volume.VolumeRenderer`'s, so
`render3d.visualize.views_grid` shows either.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_choice, check_positive
from ..cameras import Cameras

PREVIEW_BACKENDS = ("open3d", "nvdiffrast")
UNCOLORED = (0.8, 0.8, 0.8)
AMBIENT = 0.4
# Direction towards the key light in camera coordinates (x right, y down, z forward):
# up, to the left and behind the viewer.
LIGHT_CAMERA = (-0.35, -0.5, -0.8)
AXIS_COLORS = {"X": (0.9, 0.15, 0.15), "Y": (0.15, 0.75, 0.2), "Z": (0.15, 0.35, 0.95)}


def _mesh_arrays(fn: str, mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> vertices [V, 3] float32, faces [F, 3] int32, vertex normals [V, 3] float32, colours [V, 3] float32."""
    import trimesh

    from .cleanup import vertex_normals

    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        got = f"a mesh with {len(mesh.faces)} faces" if isinstance(mesh, trimesh.Trimesh) else type(mesh).__name__
        raise ValueError(f"{fn}: argument 'mesh' expected a trimesh.Trimesh with faces, got {got}")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    normals = vertex_normals(vertices, faces)
    if mesh.visual.kind == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors[:, :3], dtype=np.float32) / 255
    else:
        colors = np.broadcast_to(np.asarray(UNCOLORED, dtype=np.float32), vertices.shape)
    return vertices.astype(np.float32), faces.astype(np.int32), normals.astype(np.float32), np.ascontiguousarray(colors)


def axes_arrows(length: float, radius: float | None = None):
    """A coloured triad at the world origin: arrows along +X (red), +Y (green) and +Z (blue)
    of `length` world units, as a ``trimesh.Trimesh`` with vertex colours."""
    import trimesh

    check_positive("render3d.mesh.axes_arrows", "length", length)
    radius = radius or length / 40
    parts = []
    for axis, (name, rgb) in enumerate(AXIS_COLORS.items()):
        arrow = trimesh.util.concatenate([
            trimesh.creation.cylinder(radius, length * 0.85, sections=16,
                                      transform=trimesh.transformations.translation_matrix([0, 0, length * 0.425])),
            trimesh.creation.cone(radius * 2.5, length * 0.15, sections=16,
                                  transform=trimesh.transformations.translation_matrix([0, 0, length * 0.85])),
        ])
        # the arrows are built along +Z: turn them onto their axis
        turn = {0: trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0]),
                1: trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]),
                2: np.eye(4)}[axis]
        arrow.apply_transform(turn)
        rgba = np.round(np.array([*rgb, 1.0]) * 255).astype(np.uint8)
        arrow.visual = trimesh.visual.ColorVisuals(arrow, vertex_colors=np.tile(rgba, (len(arrow.vertices), 1)))
        parts.append(arrow)
    return trimesh.util.concatenate(parts)


def with_axes(mesh, length: float):
    """`mesh` with `axes_arrows(length)` added (an uncoloured mesh turns grey), for pictures
    that show which way the axes point."""
    import trimesh

    colored = mesh.copy()
    if colored.visual.kind != "vertex":
        grey = np.round(np.array([*UNCOLORED, 1.0]) * 255).astype(np.uint8)
        colored.visual = trimesh.visual.ColorVisuals(colored, vertex_colors=np.tile(grey, (len(colored.vertices), 1)))
    return trimesh.util.concatenate([colored, axes_arrows(length)])


def render_mesh(mesh, cameras: Cameras, *, backend: str = "open3d", supersample: int = 2,
                background=(0.96, 0.96, 0.97), progress: bool = False) -> dict[str, torch.Tensor]:
    """Render a ``trimesh.Trimesh`` (world units) from each camera.

    Returns float32 CPU tensors: ``image [B, 3, H, W]`` (shaded colour over `background`),
    ``depth [B, 1, H, W]`` (distance along the ray, world units; 0 on background),
    ``alpha [B, 1, H, W]`` (coverage in [0, 1]) and ``normals [B, 3, H, W]`` (world space,
    unit length where covered). `backend`: "open3d" (CPU ray casting) or "nvdiffrast"
    (CUDA rasterization; needs a GPU and the nvdiffrast package).
    """
    from tqdm import tqdm

    fn = "render3d.mesh.render_mesh"
    check_choice(fn, "backend", backend, PREVIEW_BACKENDS)
    if not isinstance(cameras, Cameras):
        raise ValueError(f"{fn}: argument 'cameras' expected render3d.cameras.Cameras, got {type(cameras).__name__}")
    if isinstance(supersample, bool) or not isinstance(supersample, int) or supersample < 1:
        raise ValueError(f"{fn}: argument 'supersample' expected an int >= 1, got {supersample!r}")
    arrays = _mesh_arrays(fn, mesh)
    find_surface = _open3d_surface(*arrays) if backend == "open3d" else _nvdiffrast_surface(fn, *arrays)
    cameras = cameras.to("cpu", torch.float32)
    background = torch.as_tensor(background, dtype=torch.float32).expand(3)
    outputs = []
    for i in tqdm(range(len(cameras)), desc="mesh views", unit="view", disable=not progress):
        camera = cameras[i].resized(cameras.width * supersample, cameras.height * supersample)
        outputs.append(_shade(camera, *find_surface(camera), background, supersample))
    return {key: torch.cat([o[key] for o in outputs]) for key in outputs[0]}


def _open3d_surface(vertices, faces, normals, colors):
    """-> a function camera -> (hit [H, W] bool, point, normal, colour [H, W, 3]) by ray casting."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(vertices), o3d.core.Tensor(faces.astype(np.uint32)))
    normals, colors = torch.from_numpy(normals), torch.from_numpy(colors)
    faces = torch.from_numpy(faces).long()

    def find(camera: Cameras):
        origins, directions = camera.generate_rays()
        rays = torch.cat([origins[0], directions[0]], dim=-1).numpy()
        hits = scene.cast_rays(o3d.core.Tensor(rays))
        t = torch.from_numpy(hits["t_hit"].numpy())
        hit = torch.isfinite(t)
        triangle = torch.from_numpy(hits["primitive_ids"].numpy().astype(np.int64)).where(hit, 0)
        uv = torch.from_numpy(hits["primitive_uvs"].numpy())
        # Embree's barycentrics: point = (1 - u - v) p0 + u p1 + v p2
        weights = torch.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], dim=-1)[..., None]  # [R, 3, 1]
        corners = faces[triangle]                                                              # [R, 3]
        point = origins[0] + t.where(hit, 0)[:, None] * directions[0]
        normal = (weights * normals[corners]).sum(1)
        color = (weights * colors[corners]).sum(1)
        shape = (camera.height, camera.width)
        return hit.reshape(shape), point.reshape(*shape, 3), normal.reshape(*shape, 3), color.reshape(*shape, 3)

    return find


def _nvdiffrast_surface(fn: str, vertices, faces, normals, colors):
    """-> a function camera -> (hit, point, normal, colour) by CUDA rasterization (nvdiffrast)."""
    try:
        import nvdiffrast.torch as dr
    except ImportError as exc:
        raise ValueError(f"{fn}: argument 'backend' expected an installed backend, got 'nvdiffrast', which cannot "
                         f"be imported ({exc}); use backend='open3d'") from None
    if not torch.cuda.is_available():
        raise ValueError(f"{fn}: argument 'backend' 'nvdiffrast' expected a CUDA device, got none "
                         "(torch.cuda.is_available() is False); use backend='open3d'")
    device = torch.device("cuda")
    context = dr.RasterizeCudaContext(device=device)
    positions = torch.from_numpy(vertices).to(device)
    homogeneous = torch.cat([positions, torch.ones_like(positions[:, :1])], dim=-1)                # [V, 4]
    attributes = torch.from_numpy(np.concatenate([vertices, normals, colors], axis=1)).to(device)  # [V, 9]
    triangles = torch.from_numpy(faces).to(device)

    middle = (positions.amax(0) + positions.amin(0)) / 2
    bounding_radius = float((positions - middle).norm(dim=-1).max())

    def find(camera: Cameras):
        cam = camera.to(device)
        # depth range of the mesh's bounding sphere, for the depth buffer's precision
        distance = float((cam.centers[0] - middle).norm())
        near = max(0.9 * (distance - bounding_radius), 1e-3 * bounding_radius)
        far = 1.1 * (distance + bounding_radius)
        # OpenCV camera space -> clip space: pixel row v maps to y_ndc = 2 v / H - 1, so
        # nvdiffrast's row 0 (y_ndc = -1) is the image's top row, as in render3d's images.
        p = homogeneous @ cam.world2cam[0].T                                                     # [V, 4]
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        k = cam.intrinsics[0]
        clip = torch.stack([
            (2 * (k[0, 0] * x + k[0, 1] * y + k[0, 2] * z) - z),
            (2 * (k[1, 1] * y + k[1, 2] * z) - z),
            (far + near) / (far - near) * z - 2 * far * near / (far - near),
            z,
        ], dim=-1)
        raster, _ = dr.rasterize(context, clip[None].contiguous(), triangles, resolution=[cam.height, cam.width])
        values, _ = dr.interpolate(attributes[None], raster, triangles)
        values = values[0].cpu()
        hit = raster[0, ..., 3].cpu() > 0
        return hit, values[..., 0:3], values[..., 3:6], values[..., 6:9]

    return find


def _shade(camera: Cameras, hit, point, normal, color, background, supersample: int) -> dict[str, torch.Tensor]:
    """Pictures of one camera's samples: hit ``[H, W]`` (bool), point, normal and colour
    ``[H, W, 3]`` (world units; normal not yet unit) -> image, depth, alpha, normals
    ``[1, C, H / supersample, W / supersample]``."""
    center = camera.centers[0]
    to_point = point - center
    depth = to_point.norm(dim=-1)
    normal = F.normalize(normal, dim=-1)
    facing = (normal * to_point).sum(-1, keepdim=True) > 0
    normal = torch.where(facing, -normal, normal)  # show both sides, lit from the front
    light = F.normalize(camera.cam2world[0, :3, :3] @ torch.tensor(LIGHT_CAMERA), dim=0)
    shade = AMBIENT + (1 - AMBIENT) * (normal @ light).clamp_min(0)[..., None]
    mask = hit[..., None].float()
    image = mask * color.clamp(0, 1) * shade + (1 - mask) * background

    def pool(x):  # [H, W, C] -> [1, C, H, W], averaged over supersample x supersample blocks
        return F.avg_pool2d(x.permute(2, 0, 1)[None], supersample)

    # depth and normals are averaged over the covered samples only

    coverage = pool(mask)
    covered = coverage.clamp_min(1e-12)
    normals = F.normalize(pool(normal * mask), dim=1) * (coverage > 0)
    return {"image": pool(image), "depth": pool(depth[..., None] * mask) / covered, "alpha": coverage,
            "normals": normals}


def draw_axis_labels(image: torch.Tensor, camera: Cameras, length: float) -> torch.Tensor:
    """Write "X", "Y", "Z" beside the tips of `axes_arrows(length)` on one picture
    ``[3, H, W]`` seen from `camera` (one camera). Returns a new ``[3, H, W]``."""
    from PIL import Image, ImageDraw, ImageFont

    from ..visualize import to_uint8

    picture = Image.fromarray(to_uint8(image[None])[0])
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=max(10, image.shape[-1] // 20))
    tips = torch.eye(3) * length * 1.08
    uv, _ = camera.project(tips[None].to(camera.dtype))
    for (name, rgb), (u, v) in zip(AXIS_COLORS.items(), uv[0].tolist()):
        draw.text((u, v), name, fill=tuple(int(255 * c) for c in rgb), font=font, anchor="mm")
    return torch.from_numpy(np.array(picture)).permute(2, 0, 1).float() / 255
