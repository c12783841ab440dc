"""Procedural 3D objects and scenes whose geometry is known exactly.

An object is a smooth union of 2 to 4 primitives (rounded box, sphere, capsule, cylinder,
torus), each with a random size, pose and colour, as a signed distance (world units,
negative inside). `mesh_object` turns it into a watertight triangle mesh by marching cubes,
with vertex normals from the SDF's gradient and vertex colours from the nearest primitive.
A scene is several such objects standing on a square floor, each with its oriented box.

World +Y is up (DESIGN.md). Everything is deterministic in the `numpy.random.Generator`
passed in. Sphere, box and torus distances come from `render3d.volume.fields`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from render3d._checks import said_choices
from render3d.volume.fields import BoxField, SphereField, TorusField

PRIMITIVES = ("box", "sphere", "capsule", "cylinder", "torus")
# Width of the smooth union (world units before normalization): parts blend over about this distance.
BLEND = 0.04
# Objects are scaled so that their bounding box fits in [-OBJECT_EXTENT, OBJECT_EXTENT]^3,
# inside EG3D's rendering box [-0.5, 0.5]^3.
OBJECT_EXTENT = 0.45


@dataclass
class Primitive:
    """One part: `kind` in PRIMITIVES, `size` (kind-specific lengths, world units, see
    `_local_sdf`), `rotation` [3, 3] (local to world), `center` [3], `color` RGB in [0, 1]."""

    kind: str
    size: tuple[float, ...]
    rotation: np.ndarray
    center: np.ndarray
    color: tuple[float, float, float]

    def bound(self) -> float:
        """A radius around `center` that contains the part."""
        return float(np.linalg.norm(self.size[:3])) if self.kind == "box" else float(sum(self.size))

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """points [N, 3] world -> signed distance [N] (exact for every kind)."""
        rotation = torch.as_tensor(self.rotation, dtype=points.dtype)
        local = (points - torch.as_tensor(self.center, dtype=points.dtype)) @ rotation
        return _local_sdf(self.kind, self.size, local)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "size": list(self.size), "rotation": self.rotation.tolist(),
                "center": self.center.tolist(), "color": list(self.color)}


def _local_sdf(kind: str, size: tuple[float, ...], p: torch.Tensor) -> torch.Tensor:
    """SDF in the part's own frame. size: box (half x, half y, half z, rounding); sphere
    (radius,); capsule (half length along y, radius); cylinder (half height along y, radius);
    torus around y (ring radius, tube radius)."""
    if kind == "box":
        return BoxField(half_size=size[:3], rounding=size[3]).sdf(p)
    if kind == "sphere":
        return SphereField(radius=size[0]).sdf(p)
    if kind == "torus":
        return TorusField(major_radius=size[0], minor_radius=size[1], axis="y").sdf(p)
    if kind == "capsule":
        closest = torch.stack([torch.zeros_like(p[:, 0]), p[:, 1].clamp(-size[0], size[0]),
                               torch.zeros_like(p[:, 0])], -1)
        return (p - closest).norm(dim=-1) - size[1]
    if kind == "cylinder":
        d = torch.stack([p[:, [0, 2]].norm(dim=-1) - size[1], p[:, 1].abs() - size[0]], -1)
        return d.amax(-1).clamp_max(0) + d.clamp_min(0).norm(dim=-1)
    raise ValueError(f"_local_sdf: argument 'kind' expected one of {said_choices(PRIMITIVES)}, got {kind!r}")


def _smooth_min(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """Polynomial smooth minimum (Quilez): min(a, b) blended over distance k; never above min."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b + (a - b) * h - k * h * (1 - h)


@dataclass
class ProceduralObject:
    """A smooth union of primitives, in world units."""

    parts: list[Primitive]

    def sdf(self, points: torch.Tensor) -> torch.Tensor:
        """points [N, 3] -> signed distance [N]; an exact bound outside (the smooth union only
        lowers values by at most BLEND / 4 near seams)."""
        distance = self.parts[0].sdf(points)
        for part in self.parts[1:]:
            distance = _smooth_min(distance, part.sdf(points), BLEND)
        return distance

    def nearest_part(self, points: torch.Tensor) -> torch.Tensor:
        """points [N, 3] -> index [N] of the part whose surface is nearest (inside counts as 0)."""
        return torch.stack([p.sdf(points) for p in self.parts], -1).argmin(-1)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation [3, 3] (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _random_color(rng: np.random.Generator) -> tuple[float, float, float]:
    """A saturated colour: random hue, saturation in [0.45, 0.9], value in [0.55, 0.95]."""
    import colorsys

    return tuple(float(c) for c in colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.45, 0.9), rng.uniform(0.55, 0.95)))


def _random_size(kind: str, rng: np.random.Generator, scale: float) -> tuple[float, ...]:
    if kind == "box":
        half = rng.uniform(0.35, 1.0, 3) * scale
        return (*half.tolist(), float(rng.uniform(0.0, 0.3) * half.min()))
    if kind == "sphere":
        return (float(rng.uniform(0.6, 1.0) * scale),)
    if kind == "torus":
        ring = rng.uniform(0.6, 1.0) * scale
        return (float(ring), float(rng.uniform(0.2, 0.45) * ring))
    return (float(rng.uniform(0.4, 1.0) * scale), float(rng.uniform(0.25, 0.5) * scale))  # capsule, cylinder


def _surface_point(part: Primitive, rng: np.random.Generator) -> np.ndarray:
    """The outermost point of `part`'s surface along a random direction from its centre (the
    centre itself if that ray misses the surface, as through a torus's hole along its axis)."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    t = np.linspace(0.0, 1.05 * part.bound(), 96)
    with torch.no_grad():
        sdf = part.sdf(torch.from_numpy(part.center + t[:, None] * direction)).numpy()
    inside = np.flatnonzero(sdf <= 0)
    return part.center + (t[inside[-1]] * direction if len(inside) else 0.0)


def random_object(rng: np.random.Generator, *, min_parts: int = 2, max_parts: int = 4) -> ProceduralObject:
    """A random object: a body part at the origin, then each further part centred on the
    surface of one already placed, so that the union is one connected shape."""
    parts: list[Primitive] = []
    for i in range(int(rng.integers(min_parts, max_parts + 1))):
        kind = PRIMITIVES[int(rng.integers(len(PRIMITIVES)))]
        scale = 0.3 if i == 0 else rng.uniform(0.12, 0.22)
        center = _surface_point(parts[int(rng.integers(len(parts)))], rng) if parts else np.zeros(3)
        parts.append(Primitive(kind, _random_size(kind, rng, scale), _random_rotation(rng), center,
                               _random_color(rng)))
    return ProceduralObject(parts)


@dataclass
class ObjectMesh:
    """A triangle mesh: vertices [V, 3] float64 world units, faces [F, 3] int64 (outward,
    counter-clockwise seen from outside), vertex normals [V, 3] (unit, from the SDF's
    gradient), vertex colours [V, 3] in [0, 1]. `smooth` False: shade and report the flat
    face normals (the vertex normals are then unused)."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    colors: np.ndarray
    smooth: bool = True

    def transformed(self, rotation: np.ndarray, scale: float, translation: np.ndarray) -> ObjectMesh:
        """x -> rotation @ (scale x) + translation (normals rotate)."""
        return ObjectMesh(self.vertices @ (scale * rotation.T) + translation, self.faces,
                          self.normals @ rotation.T, self.colors, self.smooth)

    def to_trimesh(self):
        import trimesh

        rgba = np.concatenate([np.round(self.colors * 255), np.full((len(self.colors), 1), 255)], 1).astype(np.uint8)
        return trimesh.Trimesh(self.vertices, self.faces, vertex_normals=self.normals, vertex_colors=rgba,
                               process=False)


def mesh_object(obj: ProceduralObject, resolution: int = 96) -> ObjectMesh:
    """Marching cubes of `obj`'s SDF on a `resolution`^3 grid over its bounds, then normalized:
    the bounding box centred at the origin and scaled to fit [-OBJECT_EXTENT, OBJECT_EXTENT]^3.
    The SDF's zero set is resolved to about 1/resolution of the object's size."""
    import mcubes

    lo = np.min([p.center - p.bound() for p in obj.parts], 0) - 2 * BLEND
    hi = np.max([p.center + p.bound() for p in obj.parts], 0) + 2 * BLEND
    step = float((hi - lo).max()) / (resolution - 1)
    counts = np.ceil((hi - lo) / step).astype(int) + 1
    axes = [torch.arange(n, dtype=torch.float32) * step + float(o) for n, o in zip(counts, lo)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    with torch.no_grad():
        sdf = torch.cat([obj.sdf(chunk) for chunk in grid.split(1 << 18)]).reshape(*counts.tolist())
    vertices, faces = mcubes.marching_cubes(-sdf.numpy().astype(np.float64), 0.0)  # outward faces
    if len(faces) == 0:
        raise ValueError(f"mesh_object: argument 'resolution' expected a grid fine enough to catch the object, "
                         f"got {resolution} points per side and no surface")
    vertices = vertices * step + lo
    points = torch.from_numpy(vertices).float().requires_grad_(True)
    gradient, = torch.autograd.grad(obj.sdf(points).sum(), points)
    normals = gradient.double().numpy()
    normals /= np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
    with torch.no_grad():
        nearest = obj.nearest_part(points.detach()).numpy()
    colors = np.array([p.color for p in obj.parts])[nearest]
    center = (vertices.min(0) + vertices.max(0)) / 2
    scale = OBJECT_EXTENT / float((vertices.max(0) - vertices.min(0)).max() / 2)
    return ObjectMesh((vertices - center) * scale, faces.astype(np.int64), normals, colors)


@dataclass
class Placement:
    """Where a canonical object stands in a scene: world = rotation @ (scale x) + translation,
    rotation about +y by `yaw` radians. `box_center`, `box_rotation`, `box_half_size`: its
    oriented bounding box in the world (world units)."""

    yaw: float
    scale: float
    translation: np.ndarray
    box_center: np.ndarray = field(default_factory=lambda: np.zeros(3))
    box_rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    box_half_size: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @property
    def rotation(self) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    def box_dict(self) -> dict:
        return {"center": self.box_center.tolist(), "rotation": self.box_rotation.tolist(),
                "half_size": self.box_half_size.tolist()}


def place_objects(meshes: list[ObjectMesh], rng: np.random.Generator, *, floor_half: float,
                  floor_y: float = 0.0) -> list[Placement]:
    """Stand each canonical mesh on the floor (top face at `floor_y`, square of half-width
    `floor_half`) at a random yaw and scale in [0.7, 1.1], with footprints that neither overlap
    nor leave the floor (rejection sampling; a mesh that finds no room after 200 tries is
    shrunk by 10 % and tried again)."""
    placed: list[tuple[np.ndarray, float]] = []
    placements = []
    for mesh in meshes:
        lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
        scale = rng.uniform(0.7, 1.1)
        while True:
            yaw = rng.uniform(-math.pi, math.pi)
            reach = scale * float(np.linalg.norm((hi - lo)[[0, 2]]) / 2)  # footprint's circumradius
            for _ in range(200):
                xz = rng.uniform(-floor_half + reach, floor_half - reach, 2) if reach < floor_half else None
                if xz is not None and all(np.linalg.norm(xz - c) > reach + r + 0.02 for c, r in placed):
                    break
            else:
                scale *= 0.9
                continue
            break
        placement = Placement(float(yaw), float(scale), np.zeros(3))
        centre_local = (lo + hi) / 2
        placement.translation = np.array([xz[0], floor_y - scale * lo[1], xz[1]]) - placement.rotation @ (
            scale * centre_local * np.array([1.0, 0.0, 1.0]))
        placement.box_center = placement.rotation @ (scale * centre_local) + placement.translation
        placement.box_rotation = placement.rotation
        placement.box_half_size = scale * (hi - lo) / 2
        placed.append((xz, reach))
        placements.append(placement)
    return placements


def floor_mesh(half: float, thickness: float = 0.04, floor_y: float = 0.0) -> ObjectMesh:
    """A square slab, top face at `floor_y`, `half` wide each way from the origin, flat-shaded;
    the renderer colours it with a checker, so the vertex colours here are a plain grey."""
    import trimesh

    box = trimesh.creation.box(extents=(2 * half, thickness, 2 * half))
    box.apply_translation((0.0, floor_y - thickness / 2, 0.0))
    vertices, faces = np.asarray(box.vertices), np.asarray(box.faces, dtype=np.int64)
    return ObjectMesh(vertices, faces, np.zeros_like(vertices), np.full_like(vertices, 0.6), smooth=False)
